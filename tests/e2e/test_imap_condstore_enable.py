"""CONDSTORE (RFC 7162 section 3.1): the first CONDSTORE-enabling command of a
session whose mailbox was selected without CONDSTORE makes the server send
'* OK [HIGHESTMODSEQ n]' for that mailbox before the command completes - for
FETCH (MODSEQ), FETCH (CHANGEDSINCE), SEARCH MODSEQ, STORE (UNCHANGEDSINCE),
STATUS (HIGHESTMODSEQ) and ENABLE CONDSTORE alike; once, not on later
commands; not without a selected mailbox."""

import re

import pytest

from imap_helpers import Raw, deliver, imap_node, resp_code


@pytest.fixture
def node(make_ternd):
    n = imap_node(make_ternd)
    deliver(n, subject="one")
    deliver(n, subject="two")
    return n


def hms_lines(untagged):
    return [r for r in untagged if re.fullmatch(rb"\* OK \[HIGHESTMODSEQ \d+\].*", r)]


def selected(node):
    c = Raw(node).login()
    untagged = c.select()
    hms = resp_code(untagged, "HIGHESTMODSEQ")
    assert hms is not None, untagged
    return c, int(hms)


def test_fetch_modseq_exact_exchange(node):
    c, hms = selected(node)
    c.send("a1 FETCH 1 (MODSEQ)\r\n")
    got = [c.response() for _ in range(3)]
    # RFC 7162 3.1: UID in FETCH responses once enabled, this command's too
    assert re.fullmatch(rb"\* 1 FETCH \(MODSEQ \(\d+\) UID 1\)", got[0]), got
    assert got[1] == b"* OK [HIGHESTMODSEQ %d] Highest" % hms, got
    assert got[2].startswith(b"a1 OK"), got
    # once: the next enabling command does not repeat it
    untagged = c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE 1)")
    assert hms_lines(untagged) == [], untagged
    c.close()


@pytest.mark.parametrize("command", [
    "FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
    "UID FETCH 1:* (MODSEQ)",
    "SEARCH MODSEQ 1",
    "STORE 1 (UNCHANGEDSINCE 1000000) +FLAGS (\\Flagged)",
    "STATUS INBOX (HIGHESTMODSEQ)",
    "ENABLE CONDSTORE",
])
def test_first_enabling_command_reports_highestmodseq(node, command):
    c, hms = selected(node)
    untagged = c.ok(command)
    lines = hms_lines(untagged)
    assert len(lines) == 1, untagged
    got = int(resp_code(lines, "HIGHESTMODSEQ"))
    # STORE changes the mailbox: the value reported is the one after it
    assert got >= hms, (got, hms)
    if not command.startswith("STORE"):
        assert got == hms, (got, hms)
    assert hms_lines(c.ok("FETCH 1 (MODSEQ)")) == []
    c.close()


def test_select_condstore_needs_no_extra_response(node):
    c = Raw(node).login()
    untagged = c.select(extra=" (CONDSTORE)")
    assert len(hms_lines(untagged)) == 1, untagged
    assert hms_lines(c.ok("FETCH 1 (MODSEQ)")) == []
    c.close()


def test_not_selected_no_response(node):
    c = Raw(node).login()
    untagged = c.ok("ENABLE CONDSTORE")
    assert hms_lines(untagged) == [], untagged
    # enabled before SELECT: SELECT reports it, the next FETCH does not
    untagged = c.select()
    assert len(hms_lines(untagged)) == 1, untagged
    assert hms_lines(c.ok("FETCH 1 (MODSEQ)")) == []
    c.close()


def test_enabled_in_one_mailbox_not_repeated_after_reselect(node):
    c, _ = selected(node)
    assert len(hms_lines(c.ok("FETCH 1 (MODSEQ)"))) == 1
    c.ok("CREATE other")
    c.select("other")
    c.select()
    assert hms_lines(c.ok("FETCH 1 (MODSEQ)")) == []
    c.close()
