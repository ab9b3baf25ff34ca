"""PARTIAL search results (RFC 5267 §4.4, with RFC 9394's negative ranges)
for SEARCH, UID SEARCH, SORT and UID SORT: "RETURN (PARTIAL 1:10)" gives
the 1st to 10th results counted from the lowest (SEARCH) or from the first
in sort order (SORT), "-1:-5" the last five; the answer is
"PARTIAL (range set)", or "PARTIAL (range NIL)" when nothing falls in the
range. MIN/MAX/COUNT are computed over the whole result; PARTIAL with ALL
is BAD. SAVE with PARTIAL (and no COUNT) saves the messages returned."""

import re

import pytest

from imap_helpers import Raw, imap_node


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def setup_mailbox(node, n=12, subjects=None):
    """n messages; UIDs 1..n, then 3 and 7 expunged: seqs 1..n-2."""
    c = Raw(node).login()
    for i in range(1, n + 1):
        subj = subjects[i - 1] if subjects else f"m{i:02d}"
        _, t = c.cmd_literal("APPEND INBOX", f"Subject: {subj}\r\n\r\nbody {i}\r\n".encode())
        assert t.startswith("OK"), t
    c.select("INBOX")
    c.ok("STORE 3,7 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    return c


def raw(c, tag, line):
    """Sends 'tag line'; returns (untagged, tagged line)."""
    c.send(f"{tag} {line}\r\n")
    return c.wait(tag)


def test_search_return_partial_first_ten(node):
    """The issue's "SEARCH RETURN (PARTIAL 1:10) ..." over 10 messages
    (seqs 1..10): positions 1 to 10, as sequence numbers."""
    with setup_mailbox(node) as c:
        u, t = raw(c, "A01", "SEARCH RETURN (PARTIAL 1:10) ALL")
        assert t.startswith("OK"), t
        assert u == [b'* ESEARCH (TAG "A01") PARTIAL (1:10 1:10)']
        u, t = raw(c, "A02", "SEARCH RETURN (PARTIAL 1:5) UNDELETED")
        assert u == [b'* ESEARCH (TAG "A02") PARTIAL (1:5 1:5)']
        u, t = raw(c, "A03", "SEARCH RETURN (PARTIAL 6:20) ALL")
        assert u == [b'* ESEARCH (TAG "A03") PARTIAL (6:20 6:10)']
        u, t = raw(c, "A04", "SEARCH RETURN (PARTIAL 11:20) ALL")
        assert u == [b'* ESEARCH (TAG "A04") PARTIAL (11:20 NIL)']


def test_uid_search_return_partial_last_five(node):
    """The issue's "UID SEARCH RETURN (PARTIAL -1:-5)": the five highest
    UIDs of the result (UIDs 1..12 less 3 and 7), as a UID set."""
    with setup_mailbox(node) as c:
        u, t = raw(c, "B01", "UID SEARCH RETURN (PARTIAL -1:-5) ALL")
        assert t.startswith("OK"), t
        assert u == [b'* ESEARCH (TAG "B01") UID PARTIAL (-1:-5 8:12)']
        u, t = raw(c, "B02", "UID SEARCH RETURN (PARTIAL -1:-8) ALL")
        assert u == [b'* ESEARCH (TAG "B02") UID PARTIAL (-1:-8 4:6,8:12)']
        u, t = raw(c, "B03", "UID SEARCH RETURN (PARTIAL 1:3) ALL")
        assert u == [b'* ESEARCH (TAG "B03") UID PARTIAL (1:3 1:2,4)']
        # "-5:-1" is the range -1:-5 (RFC 9394 §3.1), and the answer has
        # "the original range" as the client wrote it
        u, t = raw(c, "B04", "UID SEARCH RETURN (PARTIAL -5:-1) ALL")
        assert u == [b'* ESEARCH (TAG "B04") UID PARTIAL (-5:-1 8:12)']
        u, t = raw(c, "B08", "UID SEARCH RETURN (PARTIAL 3:1) ALL")
        assert u == [b'* ESEARCH (TAG "B08") UID PARTIAL (3:1 1:2,4)']
        u, t = raw(c, "B05", "UID SEARCH RETURN (PARTIAL -11:-20) ALL")
        assert u == [b'* ESEARCH (TAG "B05") UID PARTIAL (-11:-20 NIL)']
        u, t = raw(c, "B06", "UID SEARCH RETURN (PARTIAL -9:-20) ALL")
        assert u == [b'* ESEARCH (TAG "B06") UID PARTIAL (-9:-20 1:2)']
        u, t = raw(c, "B07", "UID SEARCH RETURN (PARTIAL 1:10) UID 100:200")
        assert u == [b'* ESEARCH (TAG "B07") UID PARTIAL (1:10 NIL)']


def test_partial_with_min_max_count_and_save(node):
    with setup_mailbox(node) as c:
        u, t = raw(c, "C01", "UID SEARCH RETURN (MIN MAX COUNT PARTIAL 2:3) ALL")
        assert u == [b'* ESEARCH (TAG "C01") UID MIN 1 MAX 12 COUNT 10 PARTIAL (2:3 2,4)']
        u, t = raw(c, "C02", "UID SEARCH RETURN (SAVE PARTIAL -1:-2) ALL")
        assert t.startswith("OK"), t
        assert u == [b'* ESEARCH (TAG "C02") UID PARTIAL (-1:-2 11:12)']
        assert c.search("$", uid=True) == [11, 12]


def test_partial_bad_forms_session_survives(node):
    with setup_mailbox(node) as c:
        for bad in ("SEARCH RETURN (PARTIAL) ALL", "SEARCH RETURN (PARTIAL 0:5) ALL",
                    "SEARCH RETURN (PARTIAL 1:-5) ALL", "SEARCH RETURN (PARTIAL -1:5) ALL",
                    "SEARCH RETURN (PARTIAL 5) ALL", "SEARCH RETURN (PARTIAL 1:4294967296) ALL",
                    "SEARCH RETURN (PARTIAL 1:*) ALL", "SEARCH RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL",
                    "SEARCH RETURN (ALL PARTIAL 1:5) ALL", "SEARCH RETURN (PARTIAL 01:5) ALL",
                    "SORT RETURN (PARTIAL 0:1) (SUBJECT) UTF-8 ALL",
                    "SORT RETURN (PARTIAL) (SUBJECT) UTF-8 ALL"):
            _, t = c.cmd(bad)
            assert t.startswith("BAD"), (bad, t)
        assert c.search("ALL") == list(range(1, 11))
        u, t = raw(c, "D01", "UID SEARCH RETURN (PARTIAL 1:4294967295) UID 1")
        assert u == [b'* ESEARCH (TAG "D01") UID PARTIAL (1:4294967295 1)']


def test_sort_return_partial(node):
    """SORT RETURN (PARTIAL ...): positions in sort order, the set written
    in that order (RFC 5267 §4.4)."""
    subjects = ["k", "b", "x", "a", "j", "c", "y", "i", "d", "h", "e", "g"]
    with setup_mailbox(node, subjects=subjects) as c:
        # after expunging UIDs 3 (x) and 7 (y): by subject a(4) b(2) c(6) d(9)
        # e(11) g(12) h(10) i(8) j(5) k(1)
        u, t = raw(c, "E01", "UID SORT RETURN (PARTIAL 1:4) (SUBJECT) UTF-8 ALL")
        assert t.startswith("OK"), t
        assert u == [b'* ESEARCH (TAG "E01") UID PARTIAL (1:4 4,2,6,9)']
        u, t = raw(c, "E02", "UID SORT RETURN (PARTIAL -1:-3) (SUBJECT) UTF-8 ALL")
        assert u == [b'* ESEARCH (TAG "E02") UID PARTIAL (-1:-3 8,5,1)']
        u, t = raw(c, "E03", "UID SORT RETURN (PARTIAL 5:6) (SUBJECT) UTF-8 ALL")
        assert u == [b'* ESEARCH (TAG "E03") UID PARTIAL (5:6 11:12)']
        u, t = raw(c, "E04", "SORT RETURN (PARTIAL 1:2 COUNT) (REVERSE SUBJECT) UTF-8 ALL")
        # seqs: UID 1->1, 2->2, 4->3, 5->4, 6->5, 8->6 ... k is seq 1, j seq 4
        assert u == [b'* ESEARCH (TAG "E04") COUNT 10 PARTIAL (1:2 1,4)']
        u, t = raw(c, "E05", "SORT RETURN (PARTIAL 20:30) (SUBJECT) UTF-8 ALL")
        assert u == [b'* ESEARCH (TAG "E05") PARTIAL (20:30 NIL)']
