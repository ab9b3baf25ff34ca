"""APPENDLIMIT (RFC 7889): the server advertises APPENDLIMIT=<n> with n its
max_message_size, APPEND of a bigger message gets NO [TOOBIG] (synchronising
literal: before the data is sent; LITERAL+: after the data was read and
thrown away, the session goes on), and STATUS (APPENDLIMIT) gives the same
limit for every mailbox."""

import re

import pytest

from imap_helpers import Raw, capabilities, imap_node

LIMIT = 64 * 1024


@pytest.fixture
def c(make_ternd):
    node = imap_node(make_ternd, max_message_size="64k", max_literal_size="8k")
    with Raw(node).login() as client:
        yield client


def message(size):
    head = b"From: a@a.test\r\nSubject: limit\r\n\r\n"
    return head + b"x" * (size - len(head))


def count(c):
    untagged = c.ok("STATUS INBOX (MESSAGES)")
    return int(re.search(rb"MESSAGES (\d+)", b"".join(untagged)).group(1))


def test_capability_appendlimit(c):
    """RFC 7889 section 3: capability = "APPENDLIMIT" ["=" number]; the number
    is the largest message APPEND takes (max_message_size)."""
    assert f"APPENDLIMIT={LIMIT}" in capabilities(c.ok("CAPABILITY"))


def test_append_at_the_limit_is_taken(c):
    """A message of exactly APPENDLIMIT bytes is accepted."""
    _, t = c.cmd_literal("APPEND INBOX", message(LIMIT))
    assert t.startswith("OK"), t
    assert count(c) == 1


def test_append_over_the_limit_sync_is_toobig(c):
    """RFC 7889 section 3 / RFC 4469 TOOBIG: a synchronising literal over the
    limit is refused with NO [TOOBIG] instead of the continuation."""
    t = c.tag()
    c.send(f"{t} APPEND INBOX {{{LIMIT + 1}}}\r\n")
    r = c.response()
    assert r.startswith(t.encode() + b" NO [TOOBIG]"), r
    c.ok("NOOP")
    assert count(c) == 0


def test_append_over_the_limit_nonsync_is_read_and_refused(c):
    """RFC 7888 section 4 with RFC 7889: a {n+} message over the limit is
    read and discarded, answered with [TOOBIG], and the connection goes on
    (the bytes are not run as commands)."""
    data = message(LIMIT + 10)
    data = data[:-40] + b"\r\nX9 CREATE Smuggled\r\n" + data[-18:]
    _, t = c.cmd_literal("APPEND INBOX", data, plus=True)
    assert "[TOOBIG]" in t, t
    c.ok("NOOP")
    assert count(c) == 0
    assert not [r for r in c.ok('LIST "" *') if b"Smuggled" in r]


def test_status_appendlimit(c):
    """RFC 7889 section 4: status-att =/ "APPENDLIMIT"; status-att-val =/
    "APPENDLIMIT" SP (number / nil): the limit of the mailbox."""
    c.ok("CREATE Other")
    for box in ("INBOX", "Other"):
        untagged = c.ok(f"STATUS {box} (MESSAGES APPENDLIMIT)")
        line = [r for r in untagged if r.startswith(b"* STATUS")][0]
        assert line.endswith(b"(MESSAGES 0 APPENDLIMIT %d)" % LIMIT), line
