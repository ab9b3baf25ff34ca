"""Adversarial end-to-end tests of CONDSTORE and QRESYNC (RFC 7162) with
several sessions of the same user changing one mailbox: exact VANISHED
(EARLIER) and FETCH sets on a QRESYNC SELECT, HIGHESTMODSEQ and MODSEQ after
every kind of change, [MODIFIED] under concurrent writers, CHANGEDSINCE,
SEARCH/ESEARCH MODSEQ, EXPUNGE vs VANISHED bookkeeping, and a seeded random
run whose every session view and every resync from an old state must equal
a fresh full FETCH.

Tern's choice for RFC 7162 §3.2.5.1 (a server may report, in VANISHED
(EARLIER), UIDs within the known UIDs that are not in the mailbox even if
they went away before the client's mod-sequence): Tern keeps expunge
tombstones with their mod-sequence, so it reports exactly the UIDs expunged
after the client's mod-sequence, within known-uids (test_tern_vanished_
earlier_is_exact pins that); the other tests accept any superset the RFC
permits (never a UID still in the mailbox)."""

import imaplib
import os
import random
import re
import time

import pytest

from imap_helpers import (Raw, deliver, deliver_many, fetch_dict, imap_node, login, ok, resp_code,
                          status_of, untagged_matching)
from qresync_model import (ViewModel, fetches, format_set, full_state, norm_flags, parse_set,
                           qresync_select, vanished_of)
from ternlib import make_message, unique_subject


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def session(node, enable=None, folder="INBOX"):
    c = Raw(node).login()
    if enable:
        untagged = c.ok(f"ENABLE {enable}")
        assert untagged_matching(untagged, rb"\* ENABLED .*" + enable.encode()), untagged
    if folder:
        c.select_untagged = c.ok(f"SELECT {folder}")
    return c


def hms_of(untagged):
    assert resp_code(untagged, "NOMODSEQ") is None, f"NOMODSEQ for a normal folder: {untagged!r}"
    v = resp_code(untagged, "HIGHESTMODSEQ")
    assert v is not None, f"no [HIGHESTMODSEQ] in {untagged!r}"
    return int(v)


def status_hms(c, folder="INBOX"):
    return status_of(c.ok(f"STATUS {folder} (HIGHESTMODSEQ)"))["HIGHESTMODSEQ"]


def uidvalidity_of(untagged):
    return int(resp_code(untagged, "UIDVALIDITY"))


def tagged_code(tagged, code):
    m = re.match(r"OK \[" + code + r" ([^\]]*)\]", tagged)
    return m.group(1) if m else None


def append(c, folder="INBOX", flags="", body=None):
    """APPEND over c; returns the new UID from [APPENDUID]."""
    msg = body or make_message(unique_subject("app"))
    head = f"APPEND {folder}" + (f" ({flags})" if flags else "")
    untagged, t = c.cmd_literal(head, msg)
    assert t.startswith("OK"), (t, untagged)
    m = re.search(r"\[APPENDUID (\d+) (\d+)\]", t)
    assert m, f"no APPENDUID in {t!r}"
    c.last_untagged = untagged
    return int(m.group(2))


def mark_deleted_and_expunge(c, uids):
    c.ok(f"UID STORE {format_set(uids)} +FLAGS.SILENT (\\Deleted)")
    return c.ok(f"UID EXPUNGE {format_set(uids)}")


# ------------------------------------------------------------------ SELECT QRESYNC

def _prepare_history(node):
    """10 messages, \\Seen on 1; a cache snapshot; then other sessions change
    things. Returns (uidvalidity, old hms, expected dict)."""
    deliver_many(node, 10)
    with session(node, "QRESYNC") as a:
        a.ok("UID STORE 1 +FLAGS.SILENT (\\Seen)")
        a.ok("UID STORE 4 +FLAGS.SILENT ($Before)")
        untagged = a.ok("SELECT INBOX")
        uv, m0 = uidvalidity_of(untagged), hms_of(untagged)
        old = full_state(a)
        assert set(old) == set(range(1, 11))
        assert max(ms for _, ms in old.values()) == m0
    with session(node, "QRESYNC") as b, session(node, "CONDSTORE") as c, session(node) as d:
        mark_deleted_and_expunge(b, [2, 5])
        c.ok("STORE 3 +FLAGS (\\Seen)")
        c.ok("UID STORE 7 +FLAGS (work)")
        b.ok("UID STORE 1 -FLAGS (\\Seen)")          # set before the snapshot, cleared after
        d.ok("UID STORE 4 +FLAGS (tmp)")
        d.ok("UID STORE 4 -FLAGS (tmp)")             # net nothing, but changed after m0
        deliver(node)                                # UID 11
        deliver(node)                                # UID 12, expunged below
        b.ok("NOOP")
        mark_deleted_and_expunge(b, [9, 12])
        now = full_state(b)
    assert set(now) == {1, 3, 4, 6, 7, 8, 10, 11}
    return uv, m0, old, now


def test_qresync_select_reports_exactly_what_changed(node):
    uv, m0, old, now = _prepare_history(node)
    expunged_known = {2, 5, 9}
    changed_known = {u for u in now if u <= 10 and now[u][1] > m0}
    assert changed_known == {1, 3, 4, 7}
    with session(node, "QRESYNC", folder=None) as a:
        untagged, van, fetched, hms, uidnext = qresync_select(a, uv, m0, set(range(1, 11)))
        # RFC 7162 §3.2.5.1: every expunge since m0 among the known UIDs is
        # reported; a superset may only add UIDs that are not in the mailbox
        assert van >= expunged_known, f"missing VANISHED: {untagged!r}"
        assert not van & set(now), f"VANISHED (EARLIER) names live messages: {untagged!r}"
        assert not untagged_matching(untagged, rb"\* \d+ EXPUNGE"), untagged
        # a FETCH (with UID, FLAGS, MODSEQ) for each known message changed since m0, no other
        assert {u for u in fetched if u <= 10} == changed_known, untagged
        assert set(fetched) - changed_known <= {11}, "only a new message may be added"
        for u, (flags, ms) in fetched.items():
            assert (flags, ms) == now[u], f"UID {u}: SELECT said {flags, ms}, FETCH says {now[u]}"
            assert ms > m0
        assert fetched[1][0] == frozenset(), "\\Seen was cleared after the snapshot"
        assert hms >= max(ms for _, ms in now.values())
        assert untagged_matching(untagged, rb"\* 8 EXISTS"), untagged
        assert uidnext == 13
        assert status_hms(a) == hms
        # known-uids restricts the report: UID 2 inside, 5 and 9 outside
        untagged, van, fetched, _, _ = qresync_select(a, uv, m0, {1, 2, 3, 4, 7, 8})
        assert 2 in van and not van & {5, 9, 12}, untagged
        assert not van - {1, 2, 3, 4, 7, 8}, f"VANISHED outside known-uids: {untagged!r}"
        assert {1, 3, 4, 7} <= set(fetched), untagged
        # no known-uids: as if 1:UIDNEXT-1, so 12 (born and gone after m0) is included
        untagged, van, fetched, _, _ = qresync_select(a, uv, m0)
        assert van >= {2, 5, 9, 12} and not van & set(now), untagged
        assert set(fetched) >= {1, 3, 4, 7, 11}, untagged


def test_tern_vanished_earlier_is_exact(node):
    """Tern's documented choice: VANISHED (EARLIER) = UIDs expunged after the
    client's mod-sequence, within known-uids; nothing older, nothing else."""
    uv, m0, old, now = _prepare_history(node)
    with session(node, "QRESYNC", folder=None) as a:
        _, van, _, _, _ = qresync_select(a, uv, m0, set(range(1, 11)))
        assert van == {2, 5, 9}
        _, van, _, _, _ = qresync_select(a, uv, m0)
        assert van == {2, 5, 9, 12}
        # from a later mod-sequence only the later expunges count
        _, van, fetched, hms, _ = qresync_select(a, uv, now[4][1])
        assert van == {9, 12}, van
        # known-uids naming never-existing and live UIDs changes nothing
        _, van, _, _, _ = qresync_select(a, uv, m0, {1, 2, 50, 51, 52})
        assert van == {2}


def test_qresync_select_edge_parameters(node):
    uv, m0, old, now = _prepare_history(node)
    with session(node, "QRESYNC", folder=None) as a:
        # wrong UIDVALIDITY: a plain SELECT, no resync data at all
        untagged = a.ok(f"SELECT INBOX (QRESYNC ({uv + 1} {m0} 1:10))")
        assert not vanished_of(untagged, True) and not fetches(untagged), untagged
        assert untagged_matching(untagged, rb"\* 8 EXISTS"), untagged
        hms = hms_of(untagged)
        # a known mod-sequence at (or above) HIGHESTMODSEQ: nothing changed since
        for ms in (hms, hms + 1000):
            untagged = a.ok(f"SELECT INBOX (QRESYNC ({uv} {ms} 1:12))")
            assert not vanished_of(untagged, True) and not fetches(untagged), (ms, untagged)
        # mod-sequence 0 is outside mod-sequence-value (RFC 7162 §7: 1 <= n);
        # a server may refuse it (BAD) or treat it as "know nothing": every
        # message as changed, no VANISHED
        untagged, t = a.cmd(f"SELECT INBOX (QRESYNC ({uv} 0 1:12))")
        if not t.startswith("BAD"):
            assert t.startswith("OK"), t
            assert {int(d["UID"]) for _, d in fetches(untagged)} == set(now), untagged
            assert not vanished_of(untagged, True) & set(now), untagged
        # malformed: missing modseq, garbage
        for bad in (f"({uv})", f"({uv} x)", f"({uv} {m0} 1:3 (1,2))", "()"):
            _, t = a.cmd(f"SELECT INBOX (QRESYNC {bad})")
            assert t.startswith("BAD"), (bad, t)
        # EXAMINE takes QRESYNC too and reports the same
        untagged = a.ok(f"EXAMINE INBOX (QRESYNC ({uv} {m0} 1:10))")
        assert vanished_of(untagged, True) >= {2, 5, 9}
        assert {int(d["UID"]) for _, d in fetches(untagged)} >= {1, 3, 4, 7}


def test_qresync_known_uids_star_is_bad(node):
    deliver(node)
    with session(node, "QRESYNC") as a:
        uv, m0 = uidvalidity_of(a.select_untagged), hms_of(a.select_untagged)
        _, t = a.cmd(f"SELECT INBOX (QRESYNC ({uv} {m0} 1:*))")
        assert t.startswith("BAD"), t


def test_qresync_select_with_seq_match_data_after_other_session(node):
    """The sequence-match data (RFC 7162 §3.2.5.2) may only narrow what the
    server has to guess; a server with exact tombstones ignores it, but the
    answer must still be complete and never name live messages."""
    deliver_many(node, 8)
    with session(node, "QRESYNC") as a:
        uv, m0 = uidvalidity_of(a.select_untagged), hms_of(a.select_untagged)
    with session(node, "QRESYNC") as b:
        mark_deleted_and_expunge(b, [1, 4, 8])
    with session(node, "QRESYNC", folder=None) as a:
        untagged = a.ok(f"SELECT INBOX (QRESYNC ({uv} {m0} 1:8 (1,3,5,7 1,3,5,7)))")
        v = vanished_of(untagged, True)
        assert v >= {1, 4, 8} and not v & {2, 3, 5, 6, 7}, untagged


# ------------------------------------------------------------------ modseq bookkeeping

def test_highestmodseq_and_modseq_on_every_kind_of_change(node):
    deliver_many(node, 3)
    with session(node, folder=None) as setup:
        setup.ok("CREATE Other")
    with session(node, "CONDSTORE") as a, session(node, "CONDSTORE", folder="Other") as o:
        last = {"INBOX": hms_of(a.select_untagged), "Other": hms_of(o.select_untagged)}

        def grew(what, folder="INBOX"):
            new = status_hms(o if folder == "INBOX" else a, folder)
            assert new > last[folder], f"{what}: {folder} HIGHESTMODSEQ {new} not > {last[folder]}"
            last[folder] = new
            return new

        def msg_modseq(c, uid):
            d = c.fetch(str(uid), "(UID MODSEQ)", uid=True)
            assert len(d) == 1, d
            return int(list(d.values())[0]["MODSEQ"][0])

        a.ok("UID STORE 1 +FLAGS.SILENT (\\Flagged)")
        assert msg_modseq(a, 1) == grew("flag")
        a.ok("UID STORE 2 +FLAGS.SILENT (Keyword1)")
        assert msg_modseq(a, 2) == grew("keyword")
        a.ok("UID STORE 2 -FLAGS.SILENT (Keyword1)")
        assert msg_modseq(a, 2) == grew("keyword removed")
        # FETCH BODY[] sets \Seen implicitly: a change with its own modseq,
        # reported with FLAGS, UID and MODSEQ (RFC 7162 §3.1)
        untagged = a.ok("UID FETCH 3 (BODY[])")
        rs = [fetch_dict(r)[1] for r in untagged if re.match(rb"\* \d+ FETCH", r)]
        merged = {}
        for d in rs:
            merged.update(d)
        assert "\\SEEN" in norm_flags(merged.get("FLAGS", [])), untagged
        m = grew("implicit \\Seen")
        assert "MODSEQ" in merged and int(merged["MODSEQ"][0]) == m, untagged
        deliver(node)
        a.ok("NOOP")
        assert msg_modseq(a, 4) == grew("delivery")
        uid = append(a, flags="\\Draft")
        assert msg_modseq(a, uid) == grew("APPEND")
        untagged = a.ok("UID COPY 1 INBOX")
        a.ok("NOOP")
        copy_uid = max(int(d["UID"]) for d in a.fetch("1:*", "(UID)").values())
        assert msg_modseq(a, copy_uid) == grew("COPY into the folder")
        assert msg_modseq(a, copy_uid) > msg_modseq(a, 1), "a copy is a new message with a new modseq"
        o_before = last["Other"]
        a.ok("UID MOVE 2 Other")
        grew("MOVE out (an expunge)")
        grew("MOVE into Other", "Other")
        o.ok("NOOP")
        moved = max(int(d["UID"]) for d in o.fetch("1:*", "(UID)").values())
        assert msg_modseq(o, moved) == last["Other"] > o_before
        o.ok(f"UID MOVE {moved} INBOX")
        grew("MOVE back into INBOX")
        grew("MOVE out of Other", "Other")
        a.ok("NOOP")
        back = max(int(d["UID"]) for d in a.fetch("1:*", "(UID)").values())
        assert msg_modseq(a, back) == last["INBOX"]
        a.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
        grew("\\Deleted")
        a.ok("EXPUNGE")
        grew("EXPUNGE")
        # an expunge of the message holding the highest modseq still raises it
        top = max(full_state(a).items(), key=lambda kv: kv[1][1])[0]
        mark_deleted_and_expunge(a, [top])
        grew("expunge of the newest change")
        # SELECT agrees with STATUS; every MODSEQ <= HIGHESTMODSEQ
        for folder in ("INBOX", "Other"):
            untagged = a.ok(f"SELECT {folder}")
            assert hms_of(untagged) == last[folder]
            st = full_state(a)
            assert all(ms <= last[folder] for _, ms in st.values())
            assert all(ms > 0 for _, ms in st.values())
            untagged = a.ok(f"EXAMINE {folder}")
            assert hms_of(untagged) == last[folder]


UID_RULE = ("RFC 7162 §3.1: once a CONDSTORE enabling command was issued the server MUST include "
            "both UID and mod-sequence data in all subsequent untagged FETCH responses; Tern omits UID "
            "in a CONDSTORE (non-QRESYNC) session unless the command is a UID command")


def test_condstore_external_change_fetch_carries_uid(node):
    deliver_many(node, 3)
    with session(node, "CONDSTORE") as a, session(node) as b:
        b.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
        untagged = a.ok("NOOP")
        rs = untagged_matching(untagged, rb"\* 2 FETCH ")
        assert rs, untagged
        d = fetch_dict(rs[0])[1]
        assert "MODSEQ" in d, rs
        assert "UID" in d and int(d["UID"]) == 2, f"external change reported without UID: {rs[0]!r}"


def test_condstore_store_reply_carries_uid(node):
    deliver_many(node, 3)
    with session(node, "CONDSTORE") as a:
        untagged = a.ok("STORE 3 +FLAGS (\\Flagged)")
        d = fetch_dict(untagged_matching(untagged, rb"\* 3 FETCH ")[0])[1]
        assert "MODSEQ" in d, untagged
        assert "UID" in d, f"STORE reply without UID: {untagged!r}"


def test_condstore_implicit_seen_fetch_carries_uid_and_modseq(node):
    """The rule names 'a FETCH/UID FETCH that implicitly set the \\Seen flag'
    too: FETCH BODY[] in a CONDSTORE session reports FLAGS with UID and MODSEQ."""
    deliver_many(node, 2)
    with session(node, "CONDSTORE") as a:
        untagged = a.ok("FETCH 1 (BODY[])")
        merged = {}
        for _, d in fetches(untagged):
            merged.update(d)
        assert "\\SEEN" in norm_flags(merged.get("FLAGS", [])), untagged
        assert "MODSEQ" in merged, untagged
        assert "UID" in merged, f"implicit \\Seen reported without UID: {untagged!r}"


def test_condstore_enabled_by_fetch_modseq_reports_modseq_later(node):
    deliver_many(node, 2)
    with session(node) as a, session(node) as b:
        hms_untagged = a.ok("FETCH 1 (MODSEQ)")          # CONDSTORE-enabling
        b.ok("STORE 1 +FLAGS.SILENT (\\Answered)")
        rs = untagged_matching(a.ok("NOOP"), rb"\* 1 FETCH ")
        assert rs and b"MODSEQ" in rs[0], (hms_untagged, rs)


def test_recreated_mailbox_invalidates_cached_state(node):
    """A mailbox deleted (or renamed away) and created again under the same
    name must not let an old cache resync: a new UIDVALIDITY, or UIDs that
    never reuse old ones (RFC 3501 §2.3.1.1); a QRESYNC with the old
    UIDVALIDITY then reports nothing to merge."""
    with session(node, "QRESYNC", folder=None) as a:
        a.ok("CREATE Box")
        for how in ("DELETE Box", "RENAME Box Box2"):
            for _ in range(3):
                append(a, "Box", "\\Seen")
            untagged = a.ok("SELECT Box")
            uv, ms, nxt = uidvalidity_of(untagged), hms_of(untagged), int(resp_code(untagged, "UIDNEXT"))
            a.ok("UNSELECT")
            a.ok(how)
            a.ok("CREATE Box")
            append(a, "Box")
            untagged = a.ok(f"SELECT Box (QRESYNC ({uv} {ms} 1:{nxt - 1}))")
            new_uv = uidvalidity_of(untagged)
            uids = set(full_state(a))
            assert new_uv != uv or min(uids) >= nxt, f"{how}: UIDVALIDITY {uv} kept and UIDs {uids} reused"
            if new_uv != uv:
                assert not vanished_of(untagged, True) and not fetches(untagged), (how, untagged)
            a.ok("UNSELECT")


def test_highestmodseq_in_select_is_never_zero(node):
    """RFC 7162 §7: resp-text-code HIGHESTMODSEQ takes mod-sequence-value
    (1 <= n); only STATUS may say 0 (mod-sequence-valzer)."""
    with Raw(node).login("bob") as b:
        b.ok("ENABLE CONDSTORE")
        for cmd in ("SELECT INBOX", "EXAMINE INBOX"):
            assert hms_of(b.ok(cmd)) >= 1, cmd
        b.ok("CREATE Fresh")
        assert hms_of(b.ok("SELECT Fresh")) >= 1
        assert status_hms(b, "Fresh") >= 0


# ------------------------------------------------------------------ STORE UNCHANGEDSINCE

def test_unchangedsince_modified_is_exact_under_concurrent_changes(node):
    deliver_many(node, 8)
    with session(node, "CONDSTORE") as a, session(node, "CONDSTORE") as b:
        m0 = hms_of(a.select_untagged)
        ms = {u: m for u, (_, m) in full_state(a).items()}
        b.ok("UID STORE 2 +FLAGS.SILENT (\\Answered)")
        b.ok("UID STORE 5 +FLAGS.SILENT (Other)")
        # sequence form, a's view unchanged (8 messages), b's changes unseen yet
        untagged, t = a.cmd(f"STORE 1:8 (UNCHANGEDSINCE {m0}) +FLAGS (\\Flagged)")
        assert tagged_code(t, "MODIFIED") is not None, t
        assert parse_set(tagged_code(t, "MODIFIED")) == {2, 5}, t
        done = {fetch_dict(r)[0]: fetch_dict(r)[1] for r in untagged_matching(untagged, rb"\* \d+ FETCH")}
        for seq in (1, 3, 4, 6, 7, 8):
            assert seq in done and "\\FLAGGED" in norm_flags(done[seq]["FLAGS"]), (seq, untagged)
            assert int(done[seq]["MODSEQ"][0]) > m0
        st = full_state(a)
        assert "\\FLAGGED" not in st[2][0] and "\\FLAGGED" not in st[5][0], st
        assert st[2][0] == {"\\ANSWERED"} and st[5][0] == {"OTHER"}
        # per message: its own modseq is the limit (equal passes)
        ms = {u: m for u, (_, m) in st.items()}
        b.ok("UID STORE 3 +FLAGS.SILENT (\\Draft)")
        _, t = a.cmd(f"UID STORE 3,4 (UNCHANGEDSINCE {ms[4]}) +FLAGS.SILENT (\\Seen)")
        assert parse_set(tagged_code(t, "MODIFIED") or "0") == {3}, t
        _, t = a.cmd(f"UID STORE 4 (UNCHANGEDSINCE {ms[4]}) -FLAGS.SILENT (\\Seen)")
        assert "MODIFIED" in t, "4 changed by the previous STORE: now its modseq is higher"
        # UID form after the view moved: expunges by b, then UIDs in [MODIFIED]
        mark_deleted_and_expunge(b, [1, 6])
        a.ok("NOOP")                                  # a's seq 1.. = UIDs 2,3,4,5,7,8
        ms = {u: m for u, (_, m) in full_state(a).items()}
        b.ok("UID STORE 7 +FLAGS.SILENT (\\Seen)")
        _, t = a.cmd(f"UID STORE 2:8 (UNCHANGEDSINCE {max(ms.values())}) +FLAGS.SILENT (late)")
        assert parse_set(tagged_code(t, "MODIFIED") or "0") == {7}, t
        # sequence form again: seq 5 is UID 7
        _, t = a.cmd(f"STORE 1:6 (UNCHANGEDSINCE {ms[8]}) -FLAGS.SILENT (late)")
        seqs = parse_set(tagged_code(t, "MODIFIED") or "0")
        # every message got 'late' (or \Seen) after ms[8]: all six fail
        assert seqs == {1, 2, 3, 4, 5, 6}, t
        # UNCHANGEDSINCE 0 fails for every message that exists, and only those
        _, t = a.cmd("UID STORE 1:20 (UNCHANGEDSINCE 0) +FLAGS (zero)")
        assert parse_set(tagged_code(t, "MODIFIED") or "0") == {2, 3, 4, 5, 7, 8}, t
        assert not any("ZERO" in f for f, _ in full_state(a).values())


def test_unchangedsince_with_unsynced_expunge_keeps_sequence_numbers(node):
    """b expunges while a is selected; STORE must not send EXPUNGE (RFC 3501
    §7.4.1), so [MODIFIED] and FETCH use a's old numbering."""
    deliver_many(node, 6)
    with session(node, "CONDSTORE") as a, session(node, "QRESYNC") as b:
        m0 = hms_of(a.select_untagged)
        mark_deleted_and_expunge(b, [2])
        b.ok("UID STORE 5 +FLAGS.SILENT (\\Seen)")
        untagged, t = a.cmd(f"STORE 1:6 (UNCHANGEDSINCE {m0}) +FLAGS (\\Flagged)")
        assert not untagged_matching(untagged, rb"\* \d+ EXPUNGE"), untagged
        mod = parse_set(tagged_code(t, "MODIFIED") or "0") - {0}
        assert 5 in mod and not mod - {2, 5}, t          # 2 (gone) may be listed, nothing else
        for seq, d in fetches(untagged):
            if "UID" in d:
                assert int(d["UID"]) == seq, f"old numbering: seq {seq} is UID {seq}: {d}"
        v = ViewModel(qresync=False, name="a")
        v.msgs = [[u, None, None] for u in range(1, 7)]
        v.apply(untagged)
        v.apply(a.ok("NOOP"))
        v.complete(a)
        st = full_state(a)
        assert v.uids() == sorted(st) == [1, 3, 4, 5, 6]
        assert all("\\FLAGGED" in st[u][0] for u in (1, 3, 4, 6)) and "\\FLAGGED" not in st[5][0]


def test_conditional_store_race_exactly_one_wins(node):
    """Two sessions send a conditional STORE on the same message at the same
    moment: one applies, the other gets [MODIFIED] (never both applied)."""
    deliver(node)
    with session(node, "CONDSTORE") as a, session(node, "CONDSTORE") as b:
        for i in range(15):
            ms = full_state(a)[1][1]
            ta, tb = a.tag(), b.tag()
            a.send(f"{ta} UID STORE 1 (UNCHANGEDSINCE {ms}) FLAGS (a{i})\r\n")
            b.send(f"{tb} UID STORE 1 (UNCHANGEDSINCE {ms}) FLAGS (b{i})\r\n")
            _, ra = a.wait(ta)
            _, rb = b.wait(tb)
            results = ["MODIFIED" in ra, "MODIFIED" in rb]
            assert ra.startswith("OK") and rb.startswith("OK"), (ra, rb)
            assert sorted(results) == [False, True], f"round {i}: a={ra!r} b={rb!r}"
            flags = full_state(a)[1][0]
            want = {f"B{i}".upper()} if results[0] else {f"A{i}".upper()}
            assert flags == want, (i, flags, ra, rb)


# ------------------------------------------------------------------ CHANGEDSINCE / VANISHED modifier

def test_changedsince_and_vanished_modifier_are_exact(node):
    deliver_many(node, 10)
    with session(node, "QRESYNC") as a, session(node, "CONDSTORE") as b:
        m0 = hms_of(a.select_untagged)
        b.ok("UID STORE 2,6 +FLAGS.SILENT (\\Seen)")
        b.ok("UID STORE 9 +FLAGS.SILENT (kw)")
        mark_deleted_and_expunge(b, [3, 7, 10])
        # a has not synced: non-UID FETCH cannot report the expunges, and
        # CHANGEDSINCE returns exactly the changed live messages
        untagged = a.ok(f"FETCH 1:10 (FLAGS) (CHANGEDSINCE {m0})")
        got = {int(d["UID"]) for _, d in fetches(untagged) if "UID" in d}
        seqs = {seq for seq, _ in fetches(untagged)}
        assert not untagged_matching(untagged, rb"\* VANISHED|\* \d+ EXPUNGE"), untagged
        assert {2, 6, 9} <= seqs and not seqs - {2, 3, 6, 7, 9, 10}, untagged
        for _, d in fetches(untagged):
            assert "MODSEQ" in d and int(d["MODSEQ"][0]) > m0
        a.ok("NOOP")
        # UID FETCH with VANISHED: only UIDs of the requested set
        untagged = a.ok(f"UID FETCH 5:9 (FLAGS) (CHANGEDSINCE {m0} VANISHED)")
        assert vanished_of(untagged, True) == {7}, untagged
        assert {int(d["UID"]) for _, d in fetches(untagged)} == {6, 9}, untagged
        untagged = a.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {m0} VANISHED)")
        assert vanished_of(untagged, True) == {3, 7, 10}, untagged
        assert {int(d["UID"]) for _, d in fetches(untagged)} == {2, 6, 9}, untagged
        # nothing changed after the current HIGHESTMODSEQ
        hms = status_hms(b)
        untagged = a.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {hms} VANISHED)")
        assert not fetches(untagged) and not vanished_of(untagged, True), untagged
        # VANISHED needs CHANGEDSINCE (RFC 7162 §3.2.6)
        _, t = a.cmd("UID FETCH 1:* (FLAGS) (VANISHED)")
        assert t.startswith("BAD"), t
        # CHANGEDSINCE 0 is every message
        untagged = a.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 0)")
        assert {int(d["UID"]) for _, d in fetches(untagged)} == {1, 2, 4, 5, 6, 8, 9}


def test_search_and_esearch_modseq(node):
    deliver_many(node, 6)
    with session(node, "CONDSTORE") as a, session(node) as b:
        m0 = hms_of(a.select_untagged)
        b.ok("UID STORE 2 +FLAGS.SILENT (\\Seen)")
        b.ok("UID STORE 5 +FLAGS.SILENT (\\Draft)")
        a.ok("NOOP")
        st = full_state(a)

        def one(untagged, prefix):
            rs = [r.decode() for r in untagged if r.startswith(prefix)]
            assert len(rs) == 1, untagged
            return rs[0]

        line = one(a.ok(f"SEARCH MODSEQ {m0 + 1}"), b"* SEARCH")
        assert line == f"* SEARCH 2 5 (MODSEQ {st[5][1]})", line
        line = one(a.ok(f"UID SEARCH MODSEQ {st[5][1]}"), b"* SEARCH")
        assert line == f"* SEARCH 5 (MODSEQ {st[5][1]})", line
        line = one(a.ok(f"SEARCH MODSEQ {m0 + 1} NOT DRAFT"), b"* SEARCH")
        assert line == f"* SEARCH 2 (MODSEQ {st[2][1]})", line
        # the entry-name form (RFC 7162 §3.1.5)
        line = one(a.ok(f'SEARCH MODSEQ "/flags/\\\\draft" all {m0 + 1}'), b"* SEARCH")
        assert line.startswith("* SEARCH 2 5 (MODSEQ"), line
        line = one(a.ok(f'SEARCH MODSEQ "/flags/\\\\seen" shared {m0 + 1}'), b"* SEARCH")
        assert line.startswith("* SEARCH 2 5 (MODSEQ"), line
        line = one(a.ok(f"SEARCH RETURN (ALL) MODSEQ {m0 + 1}"), b"* ESEARCH")
        assert re.fullmatch(r'\* ESEARCH \(TAG "T\d+"\) ALL 2,5 MODSEQ ' + str(st[5][1]), line), line
        line = one(a.ok(f"UID SEARCH RETURN (COUNT ALL) MODSEQ {m0 + 1}"), b"* ESEARCH")
        assert re.fullmatch(r'\* ESEARCH \(TAG "T\d+"\) UID (COUNT 2 ALL 2,5|ALL 2,5 COUNT 2) MODSEQ '
                            + str(st[5][1]), line), line
        line = one(a.ok(f"SEARCH RETURN (ALL) MODSEQ {status_hms(b) + 1}"), b"* ESEARCH")
        assert "MODSEQ" not in line.split(")", 1)[1] and "ALL" not in line, line


# ------------------------------------------------------------------ expunge reporting

def test_expunge_and_vanished_bookkeeping_across_sessions(node):
    deliver_many(node, 12)
    with session(node, folder=None) as setup:
        setup.ok("CREATE Other")
    q = session(node, "QRESYNC")
    p = session(node)
    cs = session(node, "CONDSTORE")
    im = login(node)
    x = session(node, "QRESYNC")
    try:
        ok(im.select("INBOX"))
        models = {}
        for name, c, qr in (("q", q, True), ("p", p, False), ("cs", cs, False)):
            models[name] = ViewModel(qresync=qr, name=name)
            models[name].load(c, c.select_untagged)
        im_uids = list(range(1, 13))
        # several separate expunges, none seen by the others in between
        mark_deleted_and_expunge(x, [3])
        x.ok("UID STORE 5,6,11 +FLAGS.SILENT (\\Deleted)")
        x.ok("EXPUNGE")
        x.ok("UID MOVE 1,12 Other")
        deliver(node)                                     # UID 13
        x.ok("NOOP")
        mark_deleted_and_expunge(x, [8, 13])
        x.ok("UID STORE 9 +FLAGS.SILENT (\\Answered)")
        truth = full_state(x)
        assert sorted(truth) == [2, 4, 7, 9, 10]
        # non-UID FETCH / STORE / SEARCH must not report expunges (RFC 3501 §7.4.1)
        for c, cmd in ((p, "FETCH 1:* (FLAGS)"), (cs, "SEARCH ALL"), (p, "STORE 2 +FLAGS (x)")):
            untagged = c.ok(cmd)
            assert not untagged_matching(untagged, rb"\* \d+ EXPUNGE"), (cmd, untagged)
            models["p" if c is p else "cs"].apply(untagged)
        x.ok("NOOP")
        truth = full_state(x)
        for name, c in (("q", q), ("p", p), ("cs", cs)):
            untagged = c.ok("NOOP")
            models[name].apply(untagged)
            models[name].complete(c)
            assert models[name].uids() == sorted(truth), (name, untagged)
            assert models[name].state() == {u: f for u, (f, _) in truth.items()}, (name, untagged)
            if name == "q":
                assert vanished_of(untagged, False) == {1, 3, 5, 6, 8, 11, 12}, untagged
        # imaplib (a plain client): the EXPUNGE numbers, applied in order
        typ, data = im.noop()
        assert typ == "OK"
        exp = [int(n) for n in im.untagged_responses.pop("EXPUNGE", [])]
        for n in exp:
            del im_uids[n - 1]
        assert im_uids == [2, 4, 7, 9, 10], (exp, im_uids)
        typ, data = im.uid("FETCH", "1:*", "(UID)")
        assert typ == "OK"
        # (imaplib also files the unsolicited flag FETCHes, without UID, here)
        got = [re.search(rb"UID (\d+)", d) for d in data if isinstance(d, bytes)]
        assert sorted(int(m.group(1)) for m in got if m) == [2, 4, 7, 9, 10], data
    finally:
        for c in (q, p, cs, x):
            c.close()
        try:
            im.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def test_enable_qresync_after_select(node):
    """RFC 5161 §3.1: ENABLE is for the authenticated state; a server need
    not check it. Either it refuses, or QRESYNC is on from then on (VANISHED,
    never EXPUNGE)."""
    deliver_many(node, 4)
    with session(node) as a, session(node) as b:
        untagged, t = a.cmd("ENABLE QRESYNC")
        assert t.startswith(("OK", "BAD", "NO")), t
        mark_deleted_and_expunge(b, [2])
        untagged = a.ok("NOOP")
        enabled = t.startswith("OK")
        if enabled:
            assert vanished_of(untagged, False) == {2}, untagged
            assert not untagged_matching(untagged, rb"\* \d+ EXPUNGE"), untagged
        else:
            assert untagged_matching(untagged, rb"\* 2 EXPUNGE"), untagged


def test_idle_reports_vanished_or_expunge_per_session_mode(node):
    deliver_many(node, 5)
    with session(node, "QRESYNC") as q, session(node) as p, session(node) as x:
        tags = {}
        for name, c in (("q", q), ("p", p)):
            tags[name] = c.tag()
            c.send(f"{tags[name]} IDLE\r\n")
            assert c.response().startswith(b"+"), name
        mark_deleted_and_expunge(x, [2, 4])
        x.ok("UID STORE 5 +FLAGS.SILENT (\\Flagged)")

        def collect(c, want):
            got, deadline = [], time.monotonic() + 15
            while not want(got):
                assert time.monotonic() < deadline, f"IDLE updates incomplete: {got!r}"
                r = c.poll(10)
                assert r is not None, f"no update during IDLE within the deadline: {got!r}"
                got.append(r)
            return got

        def settled(qr):
            def want(got):
                v = ViewModel(qresync=qr, name="q" if qr else "p")
                v.msgs = [[u, frozenset(), None] for u in range(1, 6)]
                v.apply(got)
                return v.uids() == [1, 3, 5] and "\\FLAGGED" in v.msgs[2][1]
            return want

        got_q = collect(q, settled(True))
        assert vanished_of(got_q, False) == {2, 4}, got_q
        assert not untagged_matching(got_q, rb"\* \d+ EXPUNGE"), got_q
        for r in untagged_matching(got_q, rb"\* \d+ FETCH"):
            seq, d = fetch_dict(r)
            assert "UID" in d and "MODSEQ" in d, r
        got_p = collect(p, settled(False))
        assert len(untagged_matching(got_p, rb"\* \d+ EXPUNGE")) == 2, got_p
        for name, c in (("q", q), ("p", p)):
            c.send("DONE\r\n")
            _, t = c.wait(tags[name])
            assert t.startswith("OK"), t


def test_unchangedsince_above_63_bits_is_bad(node):
    deliver(node)
    with session(node, "CONDSTORE") as a:
        _, t = a.cmd("UID STORE 1 (UNCHANGEDSINCE 9223372036854775807) +FLAGS (ok)")
        assert t.startswith("OK") and "MODIFIED" not in t, t
        _, t = a.cmd("UID FETCH 1 (FLAGS) (CHANGEDSINCE 9223372036854775808)")
        assert t.startswith("BAD"), t
        _, t = a.cmd("UID STORE 1 (UNCHANGEDSINCE 9223372036854775808) +FLAGS (big)")
        assert t.startswith("BAD"), t


# ------------------------------------------------------------------ model-based random run

FLAG_POOL = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft", "\\Deleted", "$Label1", "work", "todo"]


def _rand_flags(rng):
    return " ".join(rng.sample(FLAG_POOL, rng.randint(1, 3)))


def _rand_subset(rng, items, most=4):
    items = list(items)
    if not items:
        return []
    return sorted(rng.sample(items, rng.randint(1, min(most, len(items)))))


class _Run:
    def __init__(self, node, seed):
        self.node = node
        self.rng = random.Random(seed)
        self.seed = seed
        self.log = []
        s0 = session(node, "QRESYNC")
        s1 = session(node, "CONDSTORE")
        s2 = session(node)
        self.sessions = [s0, s1, s2]
        self.models = []
        for i, (c, qr) in enumerate(zip(self.sessions, (True, False, False))):
            m = ViewModel(qresync=qr, name=f"s{i}")
            m.load(c, c.select_untagged)
            self.models.append(m)
        self.other = session(node, "QRESYNC", folder="Other")   # STATUS and MOVE source
        self.observer = session(node, "QRESYNC")                 # the truth: full FETCHes
        self.uidvalidity = uidvalidity_of(s0.select_untagged)
        self.hms = status_hms(self.other)
        self.truth = full_state(self.observer)

    def close(self):
        for c in self.sessions + [self.other, self.observer]:
            c.close()

    def step(self, i):
        rng = self.rng
        k = rng.randrange(3)
        c, model = self.sessions[k], self.models[k]
        uids = model.uids()
        op = rng.choices(["deliver", "append", "store", "ustore", "cstore", "expunge",
                          "uexpunge", "move", "moveback", "copyback", "peek", "race"],
                         weights=[3, 2, 6, 6, 2, 2, 2, 2, 1, 1, 2, 4])[0]
        what = op
        untagged = []
        silent_update = None
        if op == "deliver":
            deliver(self.node)
        elif op == "append":
            append(c, flags=_rand_flags(rng) if rng.random() < 0.7 else "")
            untagged = c.last_untagged
        elif op in ("store", "ustore", "cstore") and uids:
            pick = _rand_subset(rng, range(1, len(uids) + 1) if op == "store" else uids)
            sign = rng.choice(["+", "-", ""])
            silent = rng.choice(["", ".SILENT"])
            mod = f" (UNCHANGEDSINCE {self.hms})" if op == "cstore" else ""
            flags = _rand_flags(rng)
            what = (f"{'UID ' if op != 'store' else ''}STORE {format_set(pick)}{mod} "
                    f"{sign}FLAGS{silent} ({flags})")
            untagged, t = c.cmd(what)
            assert t.startswith("OK"), (what, t)
            if op == "store":
                # RFC 3501 §7.4.1 / RFC 7162 §3.2.10: no expunge news during a non-UID STORE
                assert not untagged_matching(untagged, rb"\* (\d+ EXPUNGE|VANISHED)"), (what, untagged)
            if silent:
                # the client knows what it asked for (RFC 3501 §6.4.6 .SILENT)
                targets = [uids[n - 1] for n in pick] if op == "store" else pick
                failed = parse_set(tagged_code(t, "MODIFIED")) if "MODIFIED" in t else set()
                if op == "store":
                    failed = {uids[n - 1] for n in failed}
                silent_update = (set(targets) - failed, sign, norm_flags(flags.split()))
        elif op == "expunge":
            what = "EXPUNGE"
            untagged = c.ok("EXPUNGE")
        elif op == "uexpunge" and uids:
            pick = _rand_subset(rng, uids, 6)
            what = f"UID EXPUNGE {format_set(pick)}"
            untagged = c.ok(what)
        elif op == "move" and uids:
            pick = _rand_subset(rng, uids, 3)
            what = f"UID MOVE {format_set(pick)} Other"
            untagged = c.ok(what)
        elif op in ("moveback", "copyback"):
            self.other.ok("NOOP")
            there = sorted(full_state(self.other))
            if there:
                pick = _rand_subset(rng, there, 2)
                what = f"UID {'MOVE' if op == 'moveback' else 'COPY'} {format_set(pick)} INBOX"
                self.other.ok(what)
        elif op == "race":
            self.race()
            what = f"race {self.log.pop()}"
        elif op == "peek" and uids:
            u = rng.choice(uids)
            what = f"UID FETCH {u} (BODY[])"
            untagged = c.ok(what)
        self.log.append(f"s{k}: {what}")
        if op != "race":
            model.apply(untagged)
        if silent_update:
            targets, sign, flags = silent_update
            for m in model.msgs:
                if m[0] in targets:
                    m[1] = m[1] | flags if sign == "+" else m[1] - flags if sign == "-" else flags
        self.check(what)

    def race(self):
        """Two sessions' commands sent back to back before either reply is
        read: the server interleaves them however it likes, and both views
        must still end up exact."""
        ks = self.rng.sample(range(3), 2)
        sent = []
        for k in ks:
            c, uids = self.sessions[k], self.models[k].uids()
            kind = self.rng.choice(["store", "store", "expunge", "move"]) if uids else "none"
            if kind == "store":
                cmd = (f"UID STORE {format_set(_rand_subset(self.rng, uids, 5))} "
                       f"{self.rng.choice('+-')}FLAGS ({_rand_flags(self.rng)})")
            elif kind == "expunge":
                cmd = f"UID EXPUNGE {format_set(_rand_subset(self.rng, uids, 5))}"
            elif kind == "move":
                cmd = f"UID MOVE {format_set(_rand_subset(self.rng, uids, 2))} Other"
            else:
                cmd = "NOOP"
            tag = c.tag()
            c.send(f"{tag} {cmd}\r\n")
            sent.append((k, tag, cmd))
        for k, tag, cmd in sent:
            untagged, t = self.sessions[k].wait(tag)
            assert t.startswith(("OK", "NO")), (cmd, t)
            self.models[k].apply(untagged)
        self.log.append(" || ".join(f"s{k}: {cmd}" for k, _, cmd in sent))

    def check(self, what):
        """Every session's view equals the truth after a NOOP; HIGHESTMODSEQ
        grew exactly when something changed; changed messages carry a modseq
        in (old, new]."""
        new_hms = status_hms(self.other)
        truth = full_state(self.observer)
        ctx = f"seed {self.seed} after {what!r}; log tail {self.log[-5:]}"
        changed = {u for u in truth if u not in self.truth or truth[u][0] != self.truth[u][0]}
        gone = set(self.truth) - set(truth)
        if changed or gone:
            assert new_hms > self.hms, f"{ctx}: HIGHESTMODSEQ {new_hms} did not grow from {self.hms}"
        assert new_hms >= self.hms, ctx
        for u in changed:
            assert self.hms < truth[u][1] <= new_hms, f"{ctx}: UID {u} modseq {truth[u][1]}"
        for u in set(truth) - changed:
            assert truth[u][1] == self.truth[u][1] or truth[u][1] > self.hms, \
                f"{ctx}: UID {u} modseq moved backwards/sideways"
        assert not truth or max(ms for _, ms in truth.values()) <= new_hms, ctx
        for c, model in zip(self.sessions, self.models):
            model.apply(c.ok("NOOP"))
            model.complete(c)
            assert model.uids() == sorted(truth), f"{ctx}: {model.name} view {model.uids()}"
            assert model.state() == {u: f for u, (f, _) in truth.items()}, \
                f"{ctx}: {model.name} flags differ"
        self.truth, self.hms = truth, new_hms

    def checkpoint(self):
        return (self.hms, dict(self.truth))


def _resync(node, uidvalidity, cp, variant):
    """Rebuilds the current state from checkpoint cp the way a QRESYNC client
    does; returns ({uid: (flags, modseq)}, HIGHESTMODSEQ)."""
    old_hms, old = cp
    cache = dict(old)
    with session(node, "QRESYNC", folder=None) as c:
        known = set(old) if variant == "known" else None
        if variant == "fetch":
            untagged = c.ok("SELECT INBOX")
            hms = hms_of(untagged)
            untagged = c.ok(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {old_hms} VANISHED)")
            van = vanished_of(untagged, True)
            changed = {int(d["UID"]): (norm_flags(d["FLAGS"]), int(d["MODSEQ"][0]))
                       for _, d in fetches(untagged)}
        else:
            untagged, van, changed, hms, _ = qresync_select(c, uidvalidity, old_hms, known)
        live = full_state(c)
        assert not van & set(live), f"{variant}: VANISHED (EARLIER) names live UIDs {van & set(live)}"
        expected_gone = set(old) - set(live)
        assert van >= expected_gone, f"{variant}: missed vanished {expected_gone - van}"
        must_fetch = {u for u in live if u in old and live[u][1] > old_hms}
        assert must_fetch <= set(changed), f"{variant}: missing FETCH for {must_fetch - set(changed)}"
        assert not {u for u in changed if u in old} - must_fetch, \
            f"{variant}: FETCH for unchanged {sorted(u for u in changed if u in old and u not in must_fetch)}"
        for u in van:
            cache.pop(u, None)
        cache.update(changed)
        top = max(old) if old else 0
        new = full_state_range(c, top + 1)
        cache.update(new)
        return cache, hms, live


def full_state_range(c, first):
    out = {}
    for _, d in fetches(c.ok(f"UID FETCH {first}:* (UID FLAGS MODSEQ)")):
        u = int(d["UID"])
        if u >= first:
            out[u] = (norm_flags(d["FLAGS"]), int(d["MODSEQ"][0]))
    return out


# Fixed seeds keep the run deterministic; QRESYNC_SEEDS=a:b / QRESYNC_STEPS=n
# widen it for a bug hunt.
_SEEDS = os.environ.get("QRESYNC_SEEDS", "1:6").split(":")
RANDOM_SEEDS = list(range(int(_SEEDS[0]), int(_SEEDS[-1]) + 1))
RANDOM_STEPS = int(os.environ.get("QRESYNC_STEPS", "45"))


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_random_model_resync(node, seed):
    with session(node, folder=None) as setup:
        setup.ok("CREATE Other")
    deliver_many(node, 6)
    run = _Run(node, seed)
    checkpoints = [run.checkpoint()]
    try:
        for i in range(RANDOM_STEPS):
            run.step(i)
            if i % 15 == 14:
                checkpoints.append(run.checkpoint())
    finally:
        run.close()
    for n, cp in enumerate(checkpoints):
        for variant in ("known", "all", "fetch"):
            cache, hms, live = _resync(node, run.uidvalidity, cp, variant)
            assert cache == live, (f"seed {seed} checkpoint {n} ({variant}): resync gives "
                                   f"{sorted(cache.items())} but the server has {sorted(live.items())}")
            assert hms == run.hms, f"seed {seed}: SELECT HIGHESTMODSEQ {hms} != STATUS {run.hms}"
