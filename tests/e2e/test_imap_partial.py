"""PARTIAL (RFC 9394): the UID FETCH modifier "(PARTIAL m:n)" / "(PARTIAL
-m:-n)" returns only the messages at those positions among the messages of
the UID set (1 = the lowest UID, -1 = the highest), and the SEARCH rules of
§3.1/§3.2 that test_imap_search_partial.py does not cover: SAVE with
PARTIAL and MIN/MAX. The SEARCH/SORT return option itself is tested in
test_imap_search_partial.py."""

import re

import pytest

from imap_helpers import Raw, capabilities, imap_node


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def mailbox(node, n=12):
    """n messages, UIDs 1..n, then UIDs 3 and 7 expunged: 10 messages."""
    c = Raw(node).login()
    for i in range(1, n + 1):
        _, t = c.cmd_literal("APPEND INBOX", f"Subject: m{i:02d}\r\n\r\nbody {i}\r\n".encode())
        assert t.startswith("OK"), t
    c.select("INBOX")
    c.ok("STORE 3,7 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    return c


def fetched_uids(untagged):
    out = []
    for u in untagged:
        m = re.match(rb"\* \d+ FETCH \(.*UID (\d+)", u)
        assert m, u
        out.append(int(m.group(1)))
    return out


def raw(c, tag, line):
    c.send(f"{tag} {line}\r\n")
    return c.wait(tag)


def test_partial_capability_advertised(node):
    """RFC 9394 §2: the PARTIAL capability (the integrator adds the token)."""
    with Raw(node).login() as c:
        u, t = c.cmd("CAPABILITY")
        assert t.startswith("OK"), t
        assert "PARTIAL" in capabilities(u)


def test_uid_fetch_partial_last_three_rfc9394_example(node):
    """RFC 9394 §3.3's "UID FETCH 25900:26600 (UID FLAGS) (PARTIAL -1:-3)":
    the last three messages of the set, in the order FETCH always uses."""
    with mailbox(node) as first:
        first.ok("UID STORE 10 +FLAGS (\\Flagged \\Answered)")
        first.ok("UID STORE 11:12 +FLAGS (\\Seen)")
    with Raw(node).login() as c:   # a session for which nothing is \Recent
        c.select("INBOX")
        u, t = raw(c, "10", "UID FETCH 2:12 (UID FLAGS) (PARTIAL -1:-3)")
        assert t.startswith("OK"), t
        assert u == [b"* 8 FETCH (UID 10 FLAGS (\\Answered \\Flagged))",
                     b"* 9 FETCH (UID 11 FLAGS (\\Seen))",
                     b"* 10 FETCH (UID 12 FLAGS (\\Seen))"]


def test_uid_fetch_partial_ranges(node):
    """Positions count the messages the set names that exist (UIDs 3 and 7
    are gone): 1:* with -1:-30 is everything, 1:3 the three lowest,
    -4:-6 the 4th to 6th from the top, beyond the end nothing (OK)."""
    with mailbox(node) as c:
        u, t = raw(c, "A1", "UID FETCH 1:* (FLAGS) (PARTIAL -1:-30)")
        assert t.startswith("OK"), t
        assert fetched_uids(u) == [1, 2, 4, 5, 6, 8, 9, 10, 11, 12]
        u, t = raw(c, "A2", "UID FETCH 1:* (FLAGS) (PARTIAL 1:3)")
        assert fetched_uids(u) == [1, 2, 4]
        u, t = raw(c, "A3", "UID FETCH 1:* (FLAGS) (PARTIAL -4:-6)")
        assert fetched_uids(u) == [6, 8, 9]
        u, t = raw(c, "A4", "UID FETCH 1:* (FLAGS) (PARTIAL 3:1)")
        assert fetched_uids(u) == [1, 2, 4]
        u, t = raw(c, "A5", "UID FETCH 1:* (FLAGS) (PARTIAL 11:20)")
        assert t.startswith("OK"), t
        assert u == []
        u, t = raw(c, "A6", "UID FETCH 5:9 (FLAGS) (PARTIAL 2:3)")
        assert fetched_uids(u) == [6, 8]


def test_uid_fetch_partial_with_changedsince(node):
    """RFC 9394 §3.4: PARTIAL goes with CHANGEDSINCE, in either order; the
    range picks among the set's messages, CHANGEDSINCE then drops the
    unchanged ones."""
    with mailbox(node) as c:
        u = c.ok("UID FETCH 12 (MODSEQ)")
        modseq = int(re.search(rb"MODSEQ \((\d+)\)", u[0]).group(1))
        c.ok("UID STORE 11:12 +FLAGS.SILENT (\\Seen)")
        for mods in (f"PARTIAL -1:-3 CHANGEDSINCE {modseq}",
                     f"CHANGEDSINCE {modseq} PARTIAL -1:-3"):
            u, t = c.cmd(f"UID FETCH 1:* (FLAGS) ({mods})")
            assert t.startswith("OK"), (mods, t)
            assert fetched_uids(u) == [11, 12], mods


def test_fetch_partial_bad_forms_session_survives(node):
    """PARTIAL belongs to UID FETCH (RFC 9394 §3.3) and has the SEARCH
    option's range syntax (§4): anything else is BAD."""
    with mailbox(node) as c:
        for bad in ("FETCH 1:* (FLAGS) (PARTIAL 1:3)",
                    "UID FETCH 1:* (FLAGS) (PARTIAL)",
                    "UID FETCH 1:* (FLAGS) (PARTIAL 0:3)",
                    "UID FETCH 1:* (FLAGS) (PARTIAL 1:*)",
                    "UID FETCH 1:* (FLAGS) (PARTIAL -1:3)",
                    "UID FETCH 1:* (FLAGS) (PARTIAL 1:3 PARTIAL 4:5)",
                    "UID FETCH 1:* (FLAGS) (PARTIAL 1:4294967296)"):
            _, t = c.cmd(bad)
            assert t.startswith("BAD"), (bad, t)
        u = c.ok("UID FETCH 1:* (FLAGS) (PARTIAL -1:-1)")
        assert fetched_uids(u) == [12]


def test_save_with_partial_and_min_max(node):
    """RFC 9394 §3.2: SAVE with PARTIAL and MIN or MAX (no COUNT) saves the
    messages PARTIAL returns plus the MIN/MAX message; with COUNT every
    match."""
    with mailbox(node) as c:
        u, t = raw(c, "S1", "UID SEARCH RETURN (SAVE MIN PARTIAL -1:-2) ALL")
        assert u == [b'* ESEARCH (TAG "S1") UID MIN 1 PARTIAL (-1:-2 11:12)']
        assert c.search("$", uid=True) == [1, 11, 12]
        u, t = raw(c, "S2", "UID SEARCH RETURN (SAVE MAX PARTIAL 1:2) ALL")
        assert u == [b'* ESEARCH (TAG "S2") UID MAX 12 PARTIAL (1:2 1:2)']
        assert c.search("$", uid=True) == [1, 2, 12]
        u, t = raw(c, "S3", "UID SEARCH RETURN (SAVE MIN MAX PARTIAL 3:4) ALL")
        assert u == [b'* ESEARCH (TAG "S3") UID MIN 1 MAX 12 PARTIAL (3:4 4:5)']
        assert c.search("$", uid=True) == [1, 4, 5, 12]
        u, t = raw(c, "S4", "UID SEARCH RETURN (SAVE COUNT PARTIAL 3:4) ALL")
        assert u == [b'* ESEARCH (TAG "S4") UID COUNT 10 PARTIAL (3:4 4:5)']
        assert c.search("$", uid=True) == [1, 2, 4, 5, 6, 8, 9, 10, 11, 12]
        # SORT: MIN and MAX are the first and last in sort order
        u, t = raw(c, "S5", "UID SORT RETURN (SAVE MIN PARTIAL 1:2) (REVERSE SUBJECT) UTF-8 ALL")
        assert u == [b'* ESEARCH (TAG "S5") UID MIN 12 PARTIAL (1:2 12,11)']
        assert c.search("$", uid=True) == [11, 12]
        u, t = raw(c, "S6", "UID SORT RETURN (SAVE MAX PARTIAL 1:2) (REVERSE SUBJECT) UTF-8 ALL")
        assert u == [b'* ESEARCH (TAG "S6") UID MAX 1 PARTIAL (1:2 12,11)']
        assert c.search("$", uid=True) == [1, 11, 12]
