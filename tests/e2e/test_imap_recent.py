"""\\Recent (RFC 3501 2.3.2, 6.3.1, 6.3.2, 6.3.10) end to end: messages that
no session has claimed yet are counted by EXAMINE (without claiming them) and
by STATUS (RECENT); the next SELECT claims them, and they are \\Recent in that
session alone; afterwards STATUS, EXAMINE and SELECT elsewhere say 0. The
messages come by APPEND from a session that does not have the mailbox
selected, or by LMTP delivery; a read-only session also hears of new
unclaimed mail."""

import re

import pytest

from imap_helpers import Raw, deliver, deliver_many, imap_node, untagged_matching


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def session(node):
    return Raw(node).login()


def append(c, folder, n):
    for i in range(n):
        _, t = c.cmd_literal(f"APPEND {folder}", f"Subject: recent {i}\r\n\r\nbody {i}\r\n".encode())
        assert t.startswith("OK"), t


def recent_line(untagged):
    """The one '* n RECENT' among untagged, as n."""
    lines = [r for r in untagged if re.fullmatch(rb"\* \d+ RECENT", r)]
    assert len(lines) == 1, f"expected one * n RECENT, got {untagged!r}"
    return int(lines[0].split()[1])


def recent_flags(c):
    """{seq: True if FLAGS shows \\Recent} for every message."""
    d = c.fetch("1:*", "FLAGS")
    return {seq: "\\recent" in {str(f).lower() for f in v["FLAGS"]} for seq, v in d.items()}


def test_two_appends_then_examine_status_select(node):
    """The issue's case: two APPENDs by a session without the mailbox
    selected; EXAMINE and STATUS report 2 without claiming; the next SELECT
    claims them; later STATUS, EXAMINE and SELECT report 0."""
    with session(node) as a:
        a.ok("CREATE Box")
        append(a, "Box", 2)
        # STATUS (RECENT) counts them (RFC 3501 6.3.10), exact bytes
        untagged = a.ok("STATUS Box (RECENT)")
        assert untagged == [b"* STATUS Box (RECENT 2)"], untagged
        untagged = a.ok("STATUS Box (MESSAGES RECENT UNSEEN)")
        assert untagged == [b"* STATUS Box (MESSAGES 2 RECENT 2 UNSEEN 2)"], untagged

        # EXAMINE reports them and claims nothing (RFC 3501 6.3.2)
        with session(node) as b:
            untagged, t = b.cmd("EXAMINE Box")
            assert t.startswith("OK [READ-ONLY]"), t
            assert b"* 2 EXISTS" in untagged and b"* 2 RECENT" in untagged, untagged
            # the read-only session sees them as recent (2.3.2: only a
            # read-write session takes the flag away from later ones)
            assert recent_flags(b) == {1: True, 2: True}
            assert b.search("RECENT") == [1, 2]
            assert b.search("NEW") == [1, 2]
            untagged = a.ok("STATUS Box (RECENT)")
            assert untagged == [b"* STATUS Box (RECENT 2)"], "EXAMINE must not claim \\Recent"
            # a second EXAMINE still finds them unclaimed
            with session(node) as b2:
                assert recent_line(b2.ok("EXAMINE Box")) == 2

            # the next SELECT claims them: recent there and only there
            with session(node) as c:
                untagged, t = c.cmd("SELECT Box")
                assert t.startswith("OK [READ-WRITE]"), t
                assert b"* 2 RECENT" in untagged, untagged
                assert recent_flags(c) == {1: True, 2: True}
                assert c.search("RECENT") == [1, 2]

                # afterwards: STATUS says 0 ...
                untagged = a.ok("STATUS Box (RECENT)")
                assert untagged == [b"* STATUS Box (RECENT 0)"], untagged
                # ... a later EXAMINE says 0 and shows no \Recent ...
                with session(node) as d:
                    assert recent_line(d.ok("EXAMINE Box")) == 0
                    assert recent_flags(d) == {1: False, 2: False}
                    assert d.search("RECENT") == []
                # ... and so does a later SELECT
                with session(node) as e:
                    assert recent_line(e.ok("SELECT Box")) == 0
                    assert recent_flags(e) == {1: False, 2: False}
                # the claiming session keeps them for itself
                assert recent_flags(c) == {1: True, 2: True}
                assert untagged_matching(c.ok("NOOP"), rb"\* \d+ RECENT") == []


def test_lmtp_deliveries_are_recent_until_a_select(node):
    """Mail delivered over LMTP is recent too, the same way."""
    deliver_many(node, 2)
    with session(node) as a:
        assert a.ok("STATUS INBOX (RECENT)") == [b"* STATUS INBOX (RECENT 2)"]
        with session(node) as b:
            assert recent_line(b.ok("EXAMINE INBOX")) == 2
            assert recent_flags(b) == {1: True, 2: True}
        assert a.ok("STATUS INBOX (RECENT)") == [b"* STATUS INBOX (RECENT 2)"]
        with session(node) as c:
            assert recent_line(c.select()) == 2
        assert a.ok("STATUS INBOX (RECENT)") == [b"* STATUS INBOX (RECENT 0)"]
        # one more while nobody has INBOX open: only that one is recent
        deliver(node)
        assert a.ok("STATUS INBOX (MESSAGES RECENT)") == [b"* STATUS INBOX (MESSAGES 3 RECENT 1)"]
        with session(node) as b:
            assert recent_line(b.ok("EXAMINE INBOX")) == 1
            assert recent_flags(b) == {1: False, 2: False, 3: True}
        with session(node) as c:
            assert recent_line(c.select()) == 1
            assert recent_flags(c) == {1: False, 2: False, 3: True}
        assert a.ok("STATUS INBOX (RECENT)") == [b"* STATUS INBOX (RECENT 0)"]


def test_examine_hears_of_new_unclaimed_mail(node):
    """New mail while a mailbox is EXAMINEd: '* n RECENT' counts what no
    session claimed, still without claiming it; a SELECT later takes it."""
    with session(node) as b, session(node) as a:
        assert recent_line(b.ok("EXAMINE INBOX")) == 0
        deliver(node)
        untagged = b.ok("NOOP")
        assert b"* 1 EXISTS" in untagged and b"* 1 RECENT" in untagged, untagged
        assert recent_flags(b) == {1: True}
        assert a.ok("STATUS INBOX (RECENT)") == [b"* STATUS INBOX (RECENT 1)"]
        with session(node) as c:
            assert recent_line(c.select()) == 1
        assert a.ok("STATUS INBOX (RECENT)") == [b"* STATUS INBOX (RECENT 0)"]
        # another one: counted once, beside the one this session saw before
        deliver(node)
        untagged = b.ok("NOOP")
        assert b"* 2 EXISTS" in untagged and b"* 2 RECENT" in untagged, untagged
        assert recent_flags(b) == {1: True, 2: True}
        assert a.ok("STATUS INBOX (RECENT)") == [b"* STATUS INBOX (RECENT 1)"]


def test_status_recent_in_list_status_and_expunge(node):
    """LIST-STATUS (RFC 5819) reports RECENT the same way; STATUS counts
    unclaimed messages that exist, not UIDs."""
    with session(node) as a:
        a.ok("CREATE Two")
        append(a, "Two", 2)
        untagged = a.ok('LIST "" Two RETURN (STATUS (RECENT MESSAGES))')
        assert b"* STATUS Two (RECENT 2 MESSAGES 2)" in untagged, untagged
        with session(node) as c:
            c.select("Two")
            c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
            c.ok("EXPUNGE")
            c.ok("CLOSE")
        append(a, "Two", 1)
        assert a.ok("STATUS Two (MESSAGES RECENT)") == [b"* STATUS Two (MESSAGES 2 RECENT 1)"]


def test_status_recent_of_missing_mailbox(node):
    with session(node) as a:
        _, t = a.cmd("STATUS NoSuch (RECENT)")
        assert t.startswith("NO"), t
        a.ok("NOOP")
