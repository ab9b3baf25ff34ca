"""CONDSTORE and QRESYNC (RFC 7162) end to end: HIGHESTMODSEQ on SELECT and in
STATUS, MODSEQ in FETCH, CHANGEDSINCE, UNCHANGEDSINCE with [MODIFIED],
SEARCH MODSEQ, modseqs that strictly increase on every change, SELECT
(QRESYNC ...) with VANISHED (EARLIER) and changed FETCHes, UID FETCH
(CHANGEDSINCE .. VANISHED), and VANISHED instead of EXPUNGE after ENABLE
QRESYNC, for this session's and another session's expunges."""

import re

import pytest

from imap_helpers import (Raw, deliver, deliver_many, fetch_dict, imap_node, resp_code, status_of,
                          untagged_matching)


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def session(node, enable=None, select=True):
    c = Raw(node).login()
    if enable:
        untagged = c.ok(f"ENABLE {enable}")
        assert untagged_matching(untagged, rb"\* ENABLED .*" + enable.split()[0].encode()), untagged
    if select:
        c.select()
    return c


def modseqs(c, what="1:*", uid=True, extra=""):
    """{uid: modseq} from UID FETCH what (UID MODSEQ) [extra]."""
    d = c.fetch(what, f"(UID MODSEQ){extra}", uid=uid)
    return {int(v["UID"]): int(v["MODSEQ"][0]) for v in d.values()}


def highestmodseq(untagged):
    v = resp_code(untagged, "HIGHESTMODSEQ")
    assert v is not None, f"no [HIGHESTMODSEQ] in {untagged!r}"
    return int(v)


def vanished(untagged, earlier):
    """The set of UIDs in '* VANISHED [(EARLIER)] set' responses."""
    out = set()
    pat = rb"\* VANISHED \(EARLIER\) (\S+)$" if earlier else rb"\* VANISHED (\d\S*)$"
    for r in untagged:
        m = re.match(pat, r)
        if m:
            for part in m.group(1).decode().split(","):
                a, _, b = part.partition(":")
                lo, hi = int(a), int(b or a)
                out |= set(range(min(lo, hi), max(lo, hi) + 1))
    return out


def fetched_uids(untagged):
    out = {}
    for r in untagged:
        if re.match(rb"\* \d+ FETCH ", r):
            seq, d = fetch_dict(r)
            out[int(d["UID"])] = d
    return out


def test_highestmodseq_on_select_and_status(node):
    deliver_many(node, 3)
    with Raw(node).login() as c:
        untagged = c.ok("SELECT INBOX (CONDSTORE)")
        hms = highestmodseq(untagged)
        assert hms > 0
        ms = modseqs(c)
        assert set(ms) == {1, 2, 3} and max(ms.values()) == hms
        st = status_of(c.ok("STATUS INBOX (HIGHESTMODSEQ)"))
        assert st["HIGHESTMODSEQ"] == hms
    # ENABLE CONDSTORE makes every SELECT report it
    with session(node, "CONDSTORE", select=False) as c:
        assert highestmodseq(c.ok("SELECT INBOX")) == hms
        assert highestmodseq(c.ok("EXAMINE INBOX")) == hms


def test_modseq_strictly_increases_on_every_change(node):
    deliver_many(node, 3)
    with session(node, "CONDSTORE") as c:
        last = highestmodseq(c.ok("SELECT INBOX"))
        seen = set(modseqs(c).values())

        def bump(what):
            nonlocal last
            new = status_of(c.ok("STATUS INBOX (HIGHESTMODSEQ)"))["HIGHESTMODSEQ"]
            assert new > last, f"{what}: HIGHESTMODSEQ {new} did not grow past {last}"
            last = new
            return new

        untagged = c.ok("STORE 1 +FLAGS (\\Seen)")
        # the STORE response carries the new MODSEQ (RFC 7162 3.1.4)
        fl = [r for r in untagged if re.match(rb"\* 1 FETCH", r)]
        assert fl and b"MODSEQ" in fl[0], untagged
        m1 = bump("STORE")
        assert modseqs(c, "1")[1] == m1
        c.ok("STORE 1 +FLAGS (\\Seen)")          # no actual change
        assert status_of(c.ok("STATUS INBOX (HIGHESTMODSEQ)"))["HIGHESTMODSEQ"] == m1, \
            "a STORE that changes nothing must not bump the modseq"
        c.ok("STORE 2 +FLAGS (kw)")
        m2 = bump("keyword")
        assert modseqs(c, "2")[2] == m2
        deliver(node)
        m3 = bump("delivery")
        c.ok("NOOP")
        assert modseqs(c, "4")[4] == m3
        c.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        bump("\\Deleted")
        c.ok("EXPUNGE")
        bump("EXPUNGE")
        c.cmd_literal("APPEND INBOX", b"Subject: x\r\n\r\nx\r\n")
        bump("APPEND")
        c.ok("COPY 1 INBOX")
        bump("COPY")
        before = last
        c.ok("STORE 1:* FLAGS.SILENT (\\Answered)")
        bump("STORE on many")
        ms = modseqs(c)
        assert all(v > before for v in ms.values()), f"every message changed: {ms} vs {before}"
        assert not (set(ms.values()) & seen)


def test_changedsince(node):
    deliver_many(node, 4)
    with session(node, "CONDSTORE") as c:
        base = highestmodseq(c.ok("SELECT INBOX"))
        assert c.fetch("1:*", "(FLAGS) (CHANGEDSINCE %d)" % base) == {}
        c.ok("STORE 2,4 +FLAGS.SILENT (\\Flagged)")
        d = c.fetch("1:*", "(FLAGS) (CHANGEDSINCE %d)" % base)
        assert sorted(d) == [2, 4], d
        for v in d.values():
            assert "MODSEQ" in v, "CHANGEDSINCE implies MODSEQ in the response"
            assert int(v["MODSEQ"][0]) > base
        d = c.fetch("1:*", "(FLAGS) (CHANGEDSINCE 0)", uid=True)
        assert sorted(int(v["UID"]) for v in d.values()) == [1, 2, 3, 4]
    # CHANGEDSINCE turns CONDSTORE on by itself (RFC 7162 3.1: a CONDSTORE-enabling command)
    with session(node) as c:
        d = c.fetch("1:*", f"(FLAGS) (CHANGEDSINCE {base})")
        assert sorted(d) == [2, 4]


def test_unchangedsince_and_modified(node):
    deliver_many(node, 3)
    with session(node, "CONDSTORE") as a, session(node, "CONDSTORE") as b:
        base = highestmodseq(a.ok("SELECT INBOX"))
        b.ok("STORE 2 +FLAGS.SILENT ($Other)")       # another client changes message 2
        untagged, t = a.cmd(f"STORE 1:3 (UNCHANGEDSINCE {base}) +FLAGS (\\Seen)")
        assert t.startswith("OK [MODIFIED 2]"), t
        a.ok("NOOP")
        d = a.fetch("1:3", "FLAGS")
        flags = {k: {str(f) for f in v["FLAGS"]} - {"\\Recent"} for k, v in d.items()}
        assert flags == {1: {"\\Seen"}, 2: {"$Other"}, 3: {"\\Seen"}}, flags
        # UID STORE gives UIDs in [MODIFIED]
        a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")                       # UIDs 2, 3 are now seq 1, 2
        _, t = a.cmd("UID STORE 2:3 (UNCHANGEDSINCE 1) -FLAGS (\\Seen)")
        assert re.match(r"OK \[MODIFIED (2:3|2,3)\]", t), t
        _, t = a.cmd("STORE 1:2 (UNCHANGEDSINCE 0) +FLAGS (\\Flagged)")
        assert re.match(r"OK \[MODIFIED (1:2|1,2)\]", t), "UNCHANGEDSINCE 0 always fails"
        ms = modseqs(a)
        _, t = a.cmd(f"UID STORE 3 (UNCHANGEDSINCE {ms[3]}) +FLAGS (\\Flagged)")
        assert t.startswith("OK") and "MODIFIED" not in t, t


def test_search_modseq(node):
    deliver_many(node, 4)
    with session(node, "CONDSTORE") as c:
        base = highestmodseq(c.ok("SELECT INBOX"))
        c.ok("STORE 3 +FLAGS.SILENT (\\Seen)")
        untagged = c.ok(f"SEARCH MODSEQ {base + 1}")
        line = [r for r in untagged if r.startswith(b"* SEARCH")][0].decode()
        m = re.fullmatch(r"\* SEARCH 3 \(MODSEQ (\d+)\)", line)
        assert m, line
        assert int(m.group(1)) == modseqs(c, "3")[3]
        line = [r for r in c.ok(f"UID SEARCH MODSEQ {base + 100}") if r.startswith(b"* SEARCH")][0]
        assert line.strip() == b"* SEARCH", "no match: no MODSEQ either"


def test_qresync_select_reports_vanished_and_changes(node):
    deliver_many(node, 5)
    with session(node, "QRESYNC") as a:
        untagged = a.ok("SELECT INBOX")
        uidvalidity = int(resp_code(untagged, "UIDVALIDITY"))
        m0 = highestmodseq(untagged)
        a.ok("LOGOUT")
    # Another client changes flags on 2, expunges 4, and a message arrives (6).
    with session(node, "QRESYNC") as b:
        b.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
        b.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
    deliver(node)
    with session(node, "QRESYNC", select=False) as a:
        untagged = a.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {m0} 1:5))")
        assert vanished(untagged, earlier=True) == {4}, untagged
        assert not untagged_matching(untagged, rb"\* \d+ EXPUNGE"), untagged
        changed = fetched_uids(untagged)
        assert set(changed) == {2, 6}, f"FETCH for changed and new messages only: {untagged!r}"
        assert {str(f) for f in changed[2]["FLAGS"]} >= {"\\Flagged"}
        assert all(int(v["MODSEQ"][0]) > m0 for v in changed.values())
        assert untagged_matching(untagged, rb"\* 5 EXISTS"), untagged
        assert highestmodseq(untagged) > m0
        # Without the known-UIDs list the vanished set still names 4 (and no live UID).
        untagged = a.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {m0}))")
        v = vanished(untagged, earlier=True)
        assert 4 in v and not v & {1, 2, 3, 5, 6}, untagged
        # [CLOSED] when the QRESYNC SELECT replaced a selected mailbox (RFC 7162 3.2.11)
        assert untagged_matching(untagged, rb"\* OK \[CLOSED\]"), untagged
        # A stale UIDVALIDITY: no resync data, a plain SELECT
        untagged = a.ok(f"SELECT INBOX (QRESYNC ({uidvalidity + 1} {m0} 1:5))")
        assert not vanished(untagged, earlier=True) and not fetched_uids(untagged), untagged


def test_qresync_with_sequence_match_data(node):
    deliver_many(node, 6)
    with session(node, "QRESYNC") as a:
        untagged = a.ok("SELECT INBOX")
        uidvalidity, m0 = int(resp_code(untagged, "UIDVALIDITY")), highestmodseq(untagged)
        a.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")
        a.ok("UNSELECT")
        # client knows UIDs 1:6; seq 2 = UID 2, seq 4 = UID 4 in its old view
        untagged = a.ok(f"SELECT INBOX (QRESYNC ({uidvalidity} {m0} 1:6 (2,4 2,4)))")
        assert vanished(untagged, earlier=True) == {1, 3}, untagged


def test_uid_fetch_vanished_modifier(node):
    deliver_many(node, 4)
    with session(node, "QRESYNC") as a, session(node, "QRESYNC") as b:
        m0 = highestmodseq(a.ok("SELECT INBOX"))
        b.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
        b.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        untagged = a.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {m0} VANISHED)")
        assert 3 in vanished(untagged, earlier=True), untagged
        assert 1 in fetched_uids(untagged), untagged
        _, t = a.cmd(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {m0} VANISHED)")
        assert t.startswith("BAD"), "VANISHED needs UID FETCH"
    with session(node, "CONDSTORE") as c:
        _, t = c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
        assert t.startswith("BAD"), "VANISHED needs ENABLE QRESYNC"


def test_vanished_replaces_expunge(node):
    deliver_many(node, 5)
    with session(node, "QRESYNC") as a, session(node, "QRESYNC") as b:
        a.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
        untagged = a.ok("EXPUNGE")
        assert vanished(untagged, earlier=False) == {2, 4}, untagged
        assert not untagged_matching(untagged, rb"\* \d+ EXPUNGE"), untagged
        assert not untagged_matching(untagged, rb"\* VANISHED \(EARLIER\)"), untagged
        # The other session learns it at its next command, also as VANISHED.
        untagged = b.ok("NOOP")
        assert vanished(untagged, earlier=False) == {2, 4}, untagged
        assert not untagged_matching(untagged, rb"\* \d+ EXPUNGE"), untagged
        untagged = a.ok("UID EXPUNGE 1:*")      # nothing \Deleted now
        assert not vanished(untagged, earlier=False)
        a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        untagged = a.ok("UID EXPUNGE 1")
        assert vanished(untagged, earlier=False) == {1}, untagged
        d = a.fetch("1:*", "UID")
        assert sorted(int(v["UID"]) for v in d.values()) == [3, 5]


def test_qresync_needs_enable(node):
    deliver(node)
    with Raw(node).login() as c:
        _, t = c.cmd("SELECT INBOX (QRESYNC (1 1))")
        assert t.startswith("BAD"), "QRESYNC parameter without ENABLE QRESYNC"
        # ENABLE QRESYNC implies CONDSTORE (RFC 7162 3.2.3)
        untagged = c.ok("ENABLE QRESYNC")
        assert untagged_matching(untagged, rb"\* ENABLED"), untagged
        assert highestmodseq(c.ok("SELECT INBOX")) > 0


def test_modseq_in_unsolicited_and_silent_fetches(node):
    deliver_many(node, 3)
    with session(node, "CONDSTORE") as a, session(node) as b:
        b.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
        # RFC 7162 3.1: after a CONDSTORE-enabling command every unsolicited
        # FETCH carries MODSEQ
        untagged = a.ok("NOOP")
        rs = untagged_matching(untagged, rb"\* 2 FETCH ")
        assert rs and b"MODSEQ" in rs[0] and b"\\Seen" in rs[0], untagged
        ms = modseqs(a)
        # RFC 7162 3.1.3: with UNCHANGEDSINCE a FETCH with MODSEQ is sent even for .SILENT
        untagged = a.ok(f"STORE 3 (UNCHANGEDSINCE {ms[3]}) +FLAGS.SILENT (\\Flagged)")
        rs = untagged_matching(untagged, rb"\* 3 FETCH ")
        assert rs and b"MODSEQ" in rs[0], untagged
        assert modseqs(a, "3")[3] > ms[3]
