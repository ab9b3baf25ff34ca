"""Hostile and broken IMAP input: unknown commands, unbalanced parentheses,
invalid sequence sets, 8-bit garbage and NULs, pipelined junk, oversized lines
and literals (max_line_length, max_literal_size) get BAD (or NO [TOOBIG]) with
the session still in step; literal bytes are never run as commands; a client
that keeps sending garbage gets "* BYE" (max_bad_commands); ternd survives it
all and other sessions keep working."""

import os
import select
import socket
import time

import pytest

from imap_helpers import Closed, Raw, deliver_many, imap_addr, imap_node, untagged_matching
from ternlib import wait_for

LINE_LIMIT = 2048
LITERAL_LIMIT = 2048


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd, max_line_length="2k", max_literal_size="2k",
                     max_bad_commands=50)


def bad_or_no(t):
    return t.startswith("BAD") or t.startswith("NO")


def still_works(c):
    c.ok("NOOP")


def no_smuggled_folder(node):
    with Raw(node).login() as c:
        names = b"\n".join(c.ok('LIST "" "*"'))
        assert b"Smuggled" not in names, "literal data was run as a command"


def test_unknown_and_malformed_commands(node):
    with Raw(node) as c:
        for line in ("FROBNICATE", "LOGIN", "LOGIN a", "UID", "UID FROB 1", "CAPABILITY extra",
                     'LOGIN "unterminated', "NOOP ()"):
            _, t = c.cmd(line)
            assert t.startswith("BAD"), f"{line!r}: {t}"
        # lines with no valid tag get an untagged or tagged BAD
        for raw in (b"\r\n", b"onlytag\r\n", b"a+b NOOP\r\n", b"* NOOP\r\n"):
            c.send(raw)
            r = c.response()
            assert b"BAD" in r.split(b" ", 2)[:2] or r.startswith(b"* BAD"), f"{raw!r}: {r!r}"
        still_works(c)


def test_unbalanced_parentheses_and_nesting(node):
    deliver_many(node, 2)
    with Raw(node).login() as c:
        c.select()
        for line in ("FETCH 1 (FLAGS", "FETCH 1 FLAGS)", "FETCH 1 ((FLAGS)", "SEARCH (SEEN",
                     "SEARCH SEEN)", "STORE 1 +FLAGS (\\Seen", "FETCH 1 " + "(" * 100 + ")" * 100,
                     "SEARCH " + "(" * 100 + "ALL" + ")" * 100):
            _, t = c.cmd(line)
            assert t.startswith("BAD"), f"{line[:40]!r}: {t}"
        still_works(c)


def test_invalid_sequence_sets(node):
    deliver_many(node, 3)
    with Raw(node).login() as c:
        c.select()
        for s in ("0", "0:2", "1:x", "x", ",", "1,,2", "1:", ":2", "4294967296", "-1", "1.5",
                  "99", "2:99"):
            _, t = c.cmd(f"FETCH {s} FLAGS")
            assert t.startswith("BAD") or (t.startswith("NO") and s in ("99", "2:99")), \
                f"FETCH {s}: {t}"
        for s in ("0", "x", "1:", "4294967296"):
            _, t = c.cmd(f"UID FETCH {s} FLAGS")
            assert t.startswith("BAD"), f"UID FETCH {s}: {t}"
        _, t = c.cmd("FETCH 1 (FLAGS BOGUS)")
        assert t.startswith("BAD"), t
        _, t = c.cmd("FETCH 1 BODY[1.0]")
        assert t.startswith("BAD"), t
        _, t = c.cmd("FETCH 1 BODY[]<5.0x>")
        assert t.startswith("BAD"), t
        _, t = c.cmd("STORE 1 +FLAGS (\\Bogus)")
        assert t.startswith("BAD") or t.startswith("NO"), "unknown system flag"
        _, t = c.cmd("STORE 1 ++FLAGS (\\Seen)")
        assert t.startswith("BAD"), t
        still_works(c)
        assert c.fetch("1:*", "UID").keys() == {1, 2, 3}


def test_eight_bit_garbage_and_nul(node):
    with Raw(node) as c:
        c.send(b"\xff\xfe\xfd garbage \x80\x81\r\n")
        r = c.response()
        assert b"BAD" in r, r
        c.send(b"A1 NO\x00OP\r\n")
        r = c.response()
        assert b"BAD" in r, r
        c.send(b'A2 LOGIN "al\x00ice" x\r\n')
        r = c.response()
        assert b"BAD" in r or b"NO" in r, r
        c.send(b"A3 \x1b[31mNOOP\r\n")
        assert b"BAD" in c.response()
        still_works(c)
        c.login()
        still_works(c)


def test_pipelined_junk_keeps_order(node):
    with Raw(node) as c:
        c.login()
        c.send(b"p1 NOOP\r\njunk junk junk\r\np2 NOOP\r\n\x01\x02\x03\r\n"
               b"p3 FETCH\r\np4 SELECT INBOX\r\n)(\r\np5 NOOP\r\n")
        seen = []
        while len([s for s in seen if s.startswith(b"p5 ")]) == 0:
            r = c.response()
            if not r.startswith(b"* ") or r.startswith(b"* BAD"):
                seen.append(r)
        tagged = [r.split(b" ")[0] for r in seen if r[:1] == b"p"]
        assert tagged == [b"p1", b"p2", b"p3", b"p4", b"p5"], seen
        by_tag = {r.split(b" ")[0]: r for r in seen if r[:1] == b"p"}
        assert by_tag[b"p1"].startswith(b"p1 OK") and by_tag[b"p5"].startswith(b"p5 OK")
        assert by_tag[b"p3"].startswith(b"p3 BAD") and by_tag[b"p4"].startswith(b"p4 OK")
        assert len(seen) == 8, f"three junk lines, three BADs: {seen}"


def test_oversized_line_gets_bad_and_the_session_survives(node):
    with Raw(node).login() as c:
        c.send(b"L1 NOOP " + b"x" * (LINE_LIMIT * 4) + b"\r\n")
        r = c.response()
        assert b"BAD" in r and not r.startswith(b"* BYE"), r
        still_works(c)
        # a line just under the limit is fine
        pad = LINE_LIMIT - len(b"L2 SEARCH SUBJECT \r\n") - 10
        c.select()
        untagged, t = c.cmd("SEARCH SUBJECT " + "y" * pad)
        assert t.startswith("OK"), t


def test_oversized_sync_literal_refused_before_continuation(node):
    with Raw(node).login() as c:
        c.select()
        tag = c.tag()
        c.send(f"{tag} SEARCH TEXT {{{LITERAL_LIMIT * 10}}}\r\n".encode())
        r = c.response()
        assert not r.startswith(b"+"), "an oversized literal must not get a continuation"
        assert r.startswith(tag.encode() + b" BAD") or r.startswith(tag.encode() + b" NO [TOOBIG]"), r
        still_works(c)
        # a literal within the limit works
        untagged, t = c.cmd_literal("SEARCH TEXT", b"z" * 100)
        assert t.startswith("OK"), t
        # a huge count (beyond 32 bits) is refused the same way
        tag = c.tag()
        c.send(f"{tag} SEARCH TEXT {{99999999999999999999}}\r\n".encode())
        r = c.response()
        assert r.startswith(tag.encode() + b" BAD") or r.startswith(tag.encode() + b" NO"), r
        still_works(c)


def test_oversized_nonsync_literal_is_never_executed(node):
    smuggle = b"S1 CREATE Smuggled\r\n" * (LITERAL_LIMIT // 10)
    with Raw(node).login() as c:
        c.send(b"N1 SEARCH TEXT {%d+}\r\n" % len(smuggle) + smuggle + b"\r\nN2 NOOP\r\n")
        # RFC 7888 4: the server either reads and discards the literal (BAD), or
        # closes the connection with BYE. Either way nothing inside runs.
        try:
            got = []
            while True:
                r = c.response()
                got.append(r)
                if r.startswith(b"N2 ") or r.startswith(b"* BYE"):
                    break
            if got[-1].startswith(b"N2 "):
                assert any(g.startswith(b"N1 BAD") or g.startswith(b"N1 NO") for g in got), got
                assert not any(g.startswith(b"S1 ") for g in got), got
        except Closed:
            pass
    no_smuggled_folder(node)


def test_append_literal_uses_the_message_limit(node):
    msg = b"Subject: big append\r\n\r\n" + b"b" * (LITERAL_LIMIT * 3) + b"\r\n"
    with Raw(node).login() as c:
        _, t = c.cmd_literal("APPEND INBOX", msg)
        assert t.startswith("OK"), "APPEND messages are bounded by max_message_size, not max_literal_size"
    assert node.subjects("alice") == ["big append"]


def test_refused_literal_of_a_login_does_not_leak(node):
    with Raw(node) as c:
        tag = c.tag()
        c.send(f"{tag} LOGIN {{{LITERAL_LIMIT * 100}}}\r\n".encode())
        r = c.response()
        assert r.startswith(tag.encode() + b" BAD") or r.startswith(tag.encode() + b" NO"), r
        c.send(b"S2 CREATE Smuggled\r\n")
        r = c.response()
        assert r.startswith(b"S2 BAD") or r.startswith(b"S2 NO"), "not logged in, so refused"
        c.login()
    no_smuggled_folder(node)


def test_garbage_forever_gets_bye_and_server_survives(make_ternd):
    node = imap_node(make_ternd, max_bad_commands=3)
    other = Raw(node).login()
    c = Raw(node)
    with pytest.raises(Closed):
        for i in range(20):
            c.send(b"\x8f\x90garbage %d\r\n" % i)
            while True:
                r = c.response()
                if r.startswith(b"* BYE"):
                    c.expect_closed()
                    raise Closed("closed after BYE")
                if b"BAD" in r:
                    break
    assert i < 5, f"max_bad_commands = 3, but the session took {i + 1} bad lines"
    c.close()
    # the same with a flood sent in one go
    c = Raw(node)
    try:
        c.send(b"".join(b"x%d FROB\r\n" % i for i in range(1000)))
    except OSError:
        pass            # closed while we were still sending: fine
    c.expect_closed()   # (the BYE itself may be lost to the RST of unread input)
    c.close()
    other.ok("NOOP")
    other.ok("SELECT INBOX")
    with Raw(node).login() as fresh:
        fresh.ok("NOOP")
    other.close()


def test_half_commands_and_abrupt_disconnects(node):
    for payload in (b"A1 LOGIN alice {10}\r\n", b"A1 LOG", b"A1 LOGIN alice \"pass",
                    b"A1 APPEND INBOX {100+}\r\nabc", b"\xff" * 5000):
        s = socket.create_connection(imap_addr(node), timeout=5)
        s.sendall(payload)
        s.close()
    with Raw(node).login() as c:
        c.ok("NOOP")
        untagged = c.ok("STATUS INBOX (MESSAGES)")
        assert untagged_matching(untagged, rb"\* STATUS INBOX \(MESSAGES 0\)"), untagged


# ------------------------------------------------------------ clients that never read

def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_unread_replies_do_not_grow_memory(node):
    """A client pipelining commands without reading their replies: ternd stops
    reading from it instead of buffering ~60 MB of replies, and every command
    is still answered once the client reads."""
    n = 400_000
    payload = b"".join(b"c%d CAPABILITY\r\n" % i for i in range(n))
    pid = node.proc.pid
    base = _rss_kb(pid)
    peak = base
    c = Raw(node).login("alice")
    sock = c.sock
    sock.setblocking(False)
    sent, got, answered = 0, b"", 0
    deadline = time.monotonic() + 120
    while answered < n:
        assert time.monotonic() < deadline, f"{answered} of {n} answered"
        if sent < len(payload):
            try:
                sent += sock.send(payload[sent:sent + 65536])
                continue
            except BlockingIOError:
                pass   # ternd stopped reading: now read what it wrote
        peak = max(peak, _rss_kb(pid))
        _, _, _ = select.select([sock], [], [], 1.0)
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            continue
        assert chunk, "ternd closed the connection"
        got += chunk
        end = got.rfind(b"\n") + 1
        answered += got.count(b" OK Capability completed", 0, end)
        got = got[end:]
    if os.environ.get("TERN_SANITIZED") != "1":
        # ASan keeps freed memory in quarantine: RSS says nothing there
        assert peak - base < 32 * 1024, f"ternd grew by {(peak - base) // 1024} MB"


def test_client_that_never_reads_is_dropped(make_ternd):
    """A client that takes none of the server's output for idle_timeout is
    gone: its connection is closed and its buffers freed."""
    node = imap_node(make_ternd, idle_timeout="1s")
    c = Raw(node).login("alice")
    c.sock.setblocking(False)
    payload = b"x CAPABILITY\r\n" * 50_000
    sent = 0
    deadline = time.monotonic() + 30
    while sent < len(payload) and time.monotonic() < deadline:
        try:
            sent += c.sock.send(payload[sent:sent + 65536])
        except BlockingIOError:
            break
        except (ConnectionResetError, BrokenPipeError):
            break
    wait_for(lambda: "read nothing for" in node.stderr_text(), 15,
             "ternd to drop the client that does not read")
    c.close()
