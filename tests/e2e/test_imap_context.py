"""Updating contexts (RFC 5267 §4, CONTEXT=SEARCH and CONTEXT=SORT): a SEARCH
or SORT with RETURN (UPDATE) keeps its result up to date with unsolicited
"* ESEARCH (TAG ...) ADDTO (position set)" and "REMOVEFROM (position set)"
as messages arrive (LMTP, APPEND), change flags (this session or another)
or are expunged. SEARCH contexts give position 0 and the set in mailbox
order; SORT contexts give the positions in sort order. CANCELUPDATE ends a
context, so does leaving the mailbox; a session holds at most 16, the 17th
search is answered with "* NO [NOUPDATE tag]". Waits are NOOPs: the other
session's tagged OK (or LMTP's 250) comes after its commit, so the next NOOP
sees the change."""

import re

import pytest

from imap_helpers import Raw, capabilities, deliver, deliver_many, imap_node


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def append(c, subject, flags=""):
    """APPENDs a message; returns the untagged responses."""
    u, t = c.cmd_literal(f"APPEND INBOX {flags}".rstrip(),
                         f"Subject: {subject}\r\nFrom: a@example.org\r\n\r\nbody\r\n".encode())
    assert t.startswith("OK"), t
    return u


def session(node, subjects=(), flags=None):
    """A logged-in session with INBOX selected after appending subjects
    (UIDs 1..n); flags: per subject the APPEND flag list."""
    c = Raw(node).login()
    for i, s in enumerate(subjects):
        append(c, s, flags[i] if flags else "")
    c.select("INBOX")
    return c


def raw(c, tag, line):
    c.send(f"{tag} {line}\r\n")
    return c.wait(tag)


def esearch(untagged):
    return [u for u in untagged if u.startswith(b"* ESEARCH")]


def index_of(untagged, pattern):
    for i, u in enumerate(untagged):
        if re.match(pattern, u):
            return i
    raise AssertionError(f"{pattern!r} not in {untagged!r}")


# ---- capabilities (one function per token, for the integrator) ----

def test_context_search_capability_advertised(node):
    with Raw(node).login() as c:
        u, _ = c.cmd("CAPABILITY")
        assert "CONTEXT=SEARCH" in capabilities(u)


def test_context_sort_capability_advertised(node):
    with Raw(node).login() as c:
        u, _ = c.cmd("CAPABILITY")
        assert "CONTEXT=SORT" in capabilities(u)


# ---- RFC 5267's examples ----

def test_rfc5267_context_hint_count(node):
    """§4.2: "A01 SEARCH RETURN (CONTEXT COUNT) UNDELETED UNKEYWORD $Junk":
    CONTEXT is a hint, the answer is the COUNT; RETURN (CONTEXT) alone is
    RETURN () (ALL)."""
    with session(node, ["a", "b", "c"], ["", "($Junk)", ""]) as c:
        u, t = raw(c, "A01", "SEARCH RETURN (CONTEXT COUNT) UNDELETED UNKEYWORD $Junk")
        assert t.startswith("OK"), t
        assert u == [b'* ESEARCH (TAG "A01") COUNT 2']
        u, t = raw(c, "A02", "SEARCH RETURN (CONTEXT) UNDELETED")
        assert u == [b'* ESEARCH (TAG "A02") ALL 1:3']


def test_rfc5267_search_addto_after_store_elsewhere(node):
    """§4.3.3's "* ESEARCH (TAG "B01") UID ADDTO (0 32768:32769)": another
    session gives two messages $Junk, B01's context gains both, position 0
    and the UIDs as a set (our UIDs are 2:3, not 32768:32769)."""
    with session(node, ["a", "b", "c", "d"]) as c, Raw(node).login() as other:
        u, t = raw(c, "B01", "UID SEARCH RETURN (UPDATE) KEYWORD $Junk")
        assert t.startswith("OK"), t
        assert esearch(u) == []          # UPDATE alone: no initial ESEARCH
        other.select("INBOX")
        other.ok("UID STORE 2:3 +FLAGS.SILENT ($Junk)")
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "B01") UID ADDTO (0 2:3)']
        # FETCH FLAGS of the change come first, the update after them
        assert index_of(u, rb"\* 3 FETCH") < index_of(u, rb"\* ESEARCH")
        u = c.ok("NOOP")
        assert esearch(u) == []          # reported once


def test_rfc5267_removefrom_before_expunge(node):
    """§4.3.4: "* ESEARCH (TAG "B01") UID REMOVEFROM (0 32768)" comes before
    the EXPUNGE of that message (ours is UID 3, seq 3); a sequence-number
    context names it by its number before the expunge."""
    with session(node, ["a", "b", "c", "d"], ["", "", "($Junk)", "($Junk)"]) as c, \
            Raw(node).login() as other:
        u, t = raw(c, "B01", "UID SEARCH RETURN (UPDATE COUNT) KEYWORD $Junk")
        assert u == [b'* ESEARCH (TAG "B01") UID COUNT 2']
        u, t = raw(c, "B02", "SEARCH RETURN (UPDATE ALL) KEYWORD $Junk")
        assert u == [b'* ESEARCH (TAG "B02") ALL 3:4']
        other.select("INBOX")
        other.ok("UID STORE 3 +FLAGS.SILENT (\\Deleted)")
        other.ok("EXPUNGE")
        u = c.ok("NOOP")
        assert sorted(esearch(u)) == [b'* ESEARCH (TAG "B01") UID REMOVEFROM (0 3)',
                                      b'* ESEARCH (TAG "B02") REMOVEFROM (0 3)']
        expunge = index_of(u, rb"\* 3 EXPUNGE")
        assert all(u.index(e) < expunge for e in esearch(u))
        # after the expunge UID 4 is message 3: the context knows it so
        other.ok("UID STORE 4 -FLAGS.SILENT ($Junk)")
        u = c.ok("NOOP")
        assert sorted(esearch(u)) == [b'* ESEARCH (TAG "B01") UID REMOVEFROM (0 4)',
                                      b'* ESEARCH (TAG "B02") REMOVEFROM (0 3)']


def test_rfc5267_cancelupdate(node):
    """§4.3.5: "B04 CANCELUPDATE "B01"": no update after it."""
    with session(node, ["a"]) as c:
        _, t = raw(c, "B01", "UID SEARCH RETURN (UPDATE) UNSEEN")
        assert t.startswith("OK"), t
        deliver(node)
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "B01") UID ADDTO (0 2)']
        _, t = raw(c, "B04", 'CANCELUPDATE "B01"')
        assert t.startswith("OK"), t
        deliver(node)
        u = c.ok("NOOP")
        assert b"* 3 EXISTS" in u
        assert esearch(u) == []
        # the tag is free again (§4.3: only a live context's tag is in use)
        _, t = raw(c, "B01", "UID SEARCH RETURN (UPDATE) UNSEEN")
        assert t.startswith("OK"), t


def test_rfc5267_tag_reuse_is_bad(node):
    """§4.3: UPDATE with the tag of a live context: "B01 BAD"; the context
    and the session go on."""
    with session(node, ["a"]) as c:
        _, t = raw(c, "B01", "UID SEARCH RETURN (UPDATE) UNSEEN")
        assert t.startswith("OK"), t
        _, t = raw(c, "B01", "UID SEARCH RETURN (UPDATE) ALL")
        assert t.startswith("BAD"), t
        _, t = raw(c, "B01", "UID SORT RETURN (UPDATE) (SUBJECT) UTF-8 ALL")
        assert t.startswith("BAD"), t
        # without UPDATE the tag may be used (RFC 3501 only asks for unique tags)
        u, t = raw(c, "B01", "UID SEARCH RETURN (COUNT) ALL")
        assert u == [b'* ESEARCH (TAG "B01") UID COUNT 1']
        deliver(node)
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "B01") UID ADDTO (0 2)']


def test_rfc5267_noupdate_limit(node):
    """§4.3.1: too many contexts: "* NO [NOUPDATE "B17"]" during the
    command, the other return options still answered, the command OK. 16
    are kept; CANCELUPDATE frees a place."""
    with session(node, ["a", "b"]) as c:
        for i in range(1, 17):
            u, t = raw(c, f"B{i:02d}", "UID SEARCH RETURN (UPDATE) ALL")
            assert t.startswith("OK") and u == [], (i, u, t)
        u, t = raw(c, "B17", "UID SORT RETURN (UPDATE COUNT) (SUBJECT) UTF-8 ALL")
        assert t.startswith("OK"), t
        assert u == [b'* ESEARCH (TAG "B17") UID COUNT 2',
                     b'* NO [NOUPDATE "B17"] Too many contexts']
        deliver(node)
        u = c.ok("NOOP")
        assert len(esearch(u)) == 16
        assert not any(b'"B17"' in e for e in esearch(u))
        _, t = raw(c, "C1", 'CANCELUPDATE "B01" "B02"')
        assert t.startswith("OK"), t
        u, t = raw(c, "B18", "UID SEARCH RETURN (UPDATE) ALL")
        assert t.startswith("OK") and u == [], (u, t)
        deliver(node)
        u = c.ok("NOOP")
        assert len(esearch(u)) == 15


# ---- the sources of change ----

def test_update_after_lmtp_delivery(node):
    """New mail: ADDTO after EXISTS (§4.3.3), sequence numbers for SEARCH,
    UIDs for UID SEARCH; a delivery that does not match adds nothing."""
    with session(node, ["a", "b"]) as c:
        _, t = raw(c, "N1", "SEARCH RETURN (UPDATE) SUBJECT hello")
        _, t = raw(c, "N2", "UID SEARCH RETURN (UPDATE) ALL")
        deliver(node, subject="hello world")
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "N1") ADDTO (0 3)',
                              b'* ESEARCH (TAG "N2") UID ADDTO (0 3)']
        exists = index_of(u, rb"\* 3 EXISTS")
        assert all(u.index(e) > exists for e in esearch(u))
        deliver(node, subject="other")
        deliver(node, subject="hello again")
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "N1") ADDTO (0 5)',
                              b'* ESEARCH (TAG "N2") UID ADDTO (0 4:5)']


def test_update_after_append_and_own_store(node):
    """This session's own APPEND and STORE change contexts too, reported
    once, by the time the command's OK or the next NOOP is read."""
    with session(node, ["a", "b"]) as c:
        _, t = raw(c, "S1", "UID SEARCH RETURN (UPDATE) FLAGGED")
        u1 = c.ok("UID STORE 2 +FLAGS (\\Flagged)")
        u2 = c.ok("NOOP")
        assert esearch(u1 + u2) == [b'* ESEARCH (TAG "S1") UID ADDTO (0 2)']
        u = append(c, "c", "(\\Flagged)") + c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "S1") UID ADDTO (0 3)']
        u1 = c.ok("UID STORE 2:3 -FLAGS (\\Flagged)")
        u2 = c.ok("NOOP")
        assert esearch(u1 + u2) == [b'* ESEARCH (TAG "S1") UID REMOVEFROM (0 2:3)']


def test_update_flag_change_in_other_session(node):
    """Flags changed elsewhere make messages leave and join in one response
    (REMOVEFROM first: §4.3.2 has the client apply them in order)."""
    with session(node, ["a", "b", "c"], ["(\\Seen)", "", ""]) as c, \
            Raw(node).login() as other:
        u, t = raw(c, "F1", "UID SEARCH RETURN (UPDATE ALL) UNSEEN")
        assert u == [b'* ESEARCH (TAG "F1") UID ALL 2:3']
        other.select("INBOX")
        other.ok("UID STORE 1 -FLAGS.SILENT (\\Seen)")
        other.ok("UID STORE 2 +FLAGS.SILENT (\\Seen)")
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "F1") UID REMOVEFROM (0 2) ADDTO (0 1)']


def test_sort_context_positions(node):
    """CONTEXT=SORT: ADDTO and REMOVEFROM carry the position in sort order
    (§4.3.3/§4.3.4); several new messages, several pairs; a run that goes
    in side by side is one pair."""
    with session(node, ["b", "d", "f"]) as c:
        u, t = raw(c, "C01", "UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 ALL")
        assert u == [b'* ESEARCH (TAG "C01") UID ALL 1:3']
        u, t = raw(c, "C02", "SORT RETURN (UPDATE) (REVERSE SUBJECT) UTF-8 ALL")
        assert u == []
        deliver(node, subject="c")          # UID 4
        deliver(node, subject="a")          # UID 5
        u = c.ok("NOOP")
        # C01: a b c d f -> a at 1, c at 3; C02: f d c b a -> c at 3, a at 5
        assert esearch(u) == [b'* ESEARCH (TAG "C01") UID ADDTO (1 5 3 4)',
                              b'* ESEARCH (TAG "C02") ADDTO (3 4 5 5)']
        deliver(node, subject="e")          # UID 6
        deliver(node, subject="e")          # UID 7: same key, UID order
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "C01") UID ADDTO (5 6:7)',
                              b'* ESEARCH (TAG "C02") ADDTO (2 6:7)']
        # now a b c d e e f (UIDs 5 1 4 2 6 7 3); b and c go: both at 2
        c.ok("UID STORE 1,4 +FLAGS.SILENT (\\Deleted)")
        u = c.ok("EXPUNGE")
        assert esearch(u)[0] == b'* ESEARCH (TAG "C01") UID REMOVEFROM (2 1,4)'
        # C02 (f e e d c b a, seqs 3 6 7 2 4 1 5): c at 5, then b at 5
        assert esearch(u)[1] == b'* ESEARCH (TAG "C02") REMOVEFROM (5 4,1)'
        assert index_of(u, rb"\* ESEARCH") < index_of(u, rb"\* \d+ EXPUNGE")


def test_sort_context_flag_change(node):
    """A SORT context of a flag search: a message that gains the flag goes
    in at its sort position, one that loses it leaves from its own."""
    with session(node, ["b", "d", "f", "a"], ["(\\Flagged)", "(\\Flagged)", "", ""]) as c, \
            Raw(node).login() as other:
        u, t = raw(c, "D1", "UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 FLAGGED")
        assert u == [b'* ESEARCH (TAG "D1") UID ALL 1:2']
        other.select("INBOX")
        other.ok("UID STORE 3:4 +FLAGS.SILENT (\\Flagged)")
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "D1") UID ADDTO (1 4 4 3)']
        other.ok("UID STORE 1 -FLAGS.SILENT (\\Flagged)")
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "D1") UID REMOVEFROM (2 1)']


# ---- lifetime ----

@pytest.mark.parametrize("leave", ["SELECT INBOX", "EXAMINE INBOX", "UNSELECT", "CLOSE"])
def test_leaving_the_mailbox_ends_contexts(node, leave):
    """§4.3: updates cease when the mailbox is no longer selected."""
    with session(node, ["a"]) as c:
        _, t = raw(c, "L1", "UID SEARCH RETURN (UPDATE) ALL")
        assert t.startswith("OK"), t
        deliver(node)
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "L1") UID ADDTO (0 2)']
        c.ok(leave)
        if not leave.startswith(("SELECT", "EXAMINE")):
            c.select("INBOX")
        deliver(node)
        u = c.ok("NOOP")
        assert b"* 3 EXISTS" in u
        assert esearch(u) == []
        _, t = raw(c, "L2", 'CANCELUPDATE "L1"')
        assert t.startswith("BAD"), t
        _, t = raw(c, "L1", "UID SEARCH RETURN (UPDATE) ALL")   # tag free again
        assert t.startswith("OK"), t


def test_cancelupdate_bad_forms_session_survives(node):
    """CANCELUPDATE takes one or more quoted tags of live contexts
    (§4.3.5, "1*(SP quoted)"); an unknown tag is BAD and cancels none of
    the others; outside the selected state it is refused."""
    with Raw(node).login() as c:
        _, t = c.cmd('CANCELUPDATE "x"')
        assert t.startswith("BAD"), t
    with session(node, ["a"]) as c:
        _, t = raw(c, "K1", "UID SEARCH RETURN (UPDATE) ALL")
        for bad in ('CANCELUPDATE', 'CANCELUPDATE "nope"', 'CANCELUPDATE K1',
                    'CANCELUPDATE "K1" "nope"', 'CANCELUPDATE ("K1")'):
            _, t = c.cmd(bad)
            assert t.startswith("BAD"), (bad, t)
        deliver(node)
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "K1") UID ADDTO (0 2)']
        _, t = c.cmd('CANCELUPDATE "K1"')
        assert t.startswith("OK"), t
        _, t = c.cmd('CANCELUPDATE "K1"')
        assert t.startswith("BAD"), t


def test_update_with_partial_and_min_still_notifies_all(node):
    """§4.3: UPDATE does not interact with the other options: with PARTIAL
    or MIN the updates still cover every matching message."""
    with session(node, ["a", "b", "c"]) as c:
        u, t = raw(c, "P1", "UID SEARCH RETURN (UPDATE PARTIAL 1:1) ALL")
        assert u == [b'* ESEARCH (TAG "P1") UID PARTIAL (1:1 1)']
        u, t = raw(c, "P2", "UID SEARCH RETURN (MIN UPDATE) ALL")
        assert u == [b'* ESEARCH (TAG "P2") UID MIN 1']
        c.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        deliver(node)
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "P1") UID ADDTO (0 4)',
                              b'* ESEARCH (TAG "P2") UID ADDTO (0 4)']


def test_update_with_content_keys_evaluates_new_mail(node):
    """A program with a body key reads the new message only."""
    with session(node, ["a"]) as c:
        u, t = raw(c, "T1", "UID SEARCH RETURN (UPDATE COUNT) BODY needle")
        assert u == [b'* ESEARCH (TAG "T1") UID COUNT 0']
        deliver(node, body="a needle in a haystack\r\n")
        deliver(node, body="just hay\r\n")
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "T1") UID ADDTO (0 2)']


def test_too_many_reads_for_one_sync_ends_the_context(node):
    """Re-evaluating a context reads message text only for the changed
    messages, and at most 256 per sync (search-context.h): a change of 300
    messages that a BODY context would have to read ends that context with
    "* NO [NOUPDATE tag]"; a metadata context follows the same change."""
    deliver_many(node, 300)
    with session(node) as c:
        c.ok("STORE 1:* +FLAGS.SILENT (\\Seen)")
        _, t = raw(c, "T1", "UID SEARCH RETURN (UPDATE) UNSEEN BODY needle")
        assert t.startswith("OK"), t
        _, t = raw(c, "T2", "UID SEARCH RETURN (UPDATE) UNSEEN")
        u = c.ok("STORE 1:* -FLAGS.SILENT (\\Seen)") + c.ok("NOOP")
        assert b'* NO [NOUPDATE "T1"] Too many changes to follow' in u
        assert esearch(u) == [b'* ESEARCH (TAG "T2") UID ADDTO (0 1:300)']
        _, t = raw(c, "T3", 'CANCELUPDATE "T1"')
        assert t.startswith("BAD"), t
        # a change within the budget is followed
        _, t = raw(c, "T4", "UID SEARCH RETURN (UPDATE) SEEN BODY Tern")
        u = c.ok("UID STORE 1:5 +FLAGS.SILENT (\\Seen)") + c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "T2") UID REMOVEFROM (0 1:5)',
                              b'* ESEARCH (TAG "T4") UID ADDTO (0 1:5)']


def test_star_in_the_program_follows_new_mail(node):
    """"*" means the highest number as if the command were issued now
    (§4.3: the results an unmodified searching command would return), so
    "UID 2:*" and "2:*" take new messages in."""
    with session(node, ["a", "b", "c"]) as c:
        u, t = raw(c, "U1", "UID SEARCH RETURN (UPDATE ALL) UID 2:*")
        assert u == [b'* ESEARCH (TAG "U1") UID ALL 2:3']
        u, t = raw(c, "U2", "SEARCH RETURN (UPDATE COUNT) 2:*")
        assert u == [b'* ESEARCH (TAG "U2") COUNT 2']
        deliver(node)
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "U1") UID ADDTO (0 4)',
                              b'* ESEARCH (TAG "U2") ADDTO (0 4)']


def test_updates_during_idle(node):
    """§4.3.2: updates may come at any time, IDLE included: new mail in
    IDLE brings EXISTS and then the ADDTO, with no command to ask."""
    with session(node, ["a"]) as c:
        _, t = raw(c, "I1", "UID SEARCH RETURN (UPDATE) ALL")
        c.send("I2 IDLE\r\n")
        assert c.response().startswith(b"+ ")
        deliver(node)
        got = []
        while not any(g.startswith(b"* ESEARCH") for g in got):
            got.append(c.response())      # each read has the client's deadline
        assert got[-1] == b'* ESEARCH (TAG "I1") UID ADDTO (0 2)'
        assert b"* 2 EXISTS" in got
        c.send("DONE\r\n")
        _, t = c.wait("I2")
        assert t.startswith("OK"), t


def test_removefrom_waits_with_the_expunge(node):
    """§4.3.4 with RFC 3501 §7.4.1: an expunge is not reported during FETCH,
    and neither is the REMOVEFROM it causes; both come at the next NOOP,
    REMOVEFROM first, in numbers still valid then."""
    with session(node, ["a", "b", "c"]) as c, Raw(node).login() as other:
        _, t = raw(c, "E1", "SEARCH RETURN (UPDATE) ALL")
        other.select("INBOX")
        other.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)")
        other.ok("EXPUNGE")
        u = c.ok("FETCH 1:3 (UID)")
        assert not any(b"EXPUNGE" in x or b"REMOVEFROM" in x for x in u), u
        u = c.ok("NOOP")
        assert esearch(u) == [b'* ESEARCH (TAG "E1") REMOVEFROM (0 2)']
        assert index_of(u, rb"\* ESEARCH") < index_of(u, rb"\* 2 EXPUNGE")
