"""ESEARCH with CONDSTORE (RFC 4731 §3.2, RFC 7162 §3.1.5): the MODSEQ
result option of SEARCH RETURN (...) ... MODSEQ ... is the mod-sequence of
the message returned when the client asked for MIN or MAX alone, the highest
of the MIN and MAX messages when it asked for both, and the highest of all
matches when it asked for ALL or COUNT. The exchange is the one of the
esearch-condstore case of the imaptest suite: four messages stored as seen
in the order 1, 3, 2, 4, so that message 3 has a lower modseq than 2."""

import re

import pytest

from imap_helpers import Raw, deliver, imap_node


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def store_seen(c, seq):
    untagged = c.ok(f"STORE {seq} +FLAGS \\Seen")
    for r in untagged:
        m = re.match(rb"\* (\d+) FETCH \(.*MODSEQ \((\d+)\)", r)
        if m and int(m.group(1)) == seq:
            return int(m.group(2))
    raise AssertionError(f"no MODSEQ for {seq} in {untagged!r}")


def esearch(c, criteria):
    """The one ESEARCH line (without its TAG part) of SEARCH criteria."""
    tag = c.tag()
    c.send(f"{tag} SEARCH {criteria}\r\n")
    untagged, tagged = c.wait(tag)
    assert tagged.startswith("OK"), tagged
    lines = [r for r in untagged if r.startswith(b"* ESEARCH")]
    assert len(lines) == 1, untagged
    prefix = f'* ESEARCH (TAG "{tag}")'.encode()
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix):].decode()


@pytest.fixture
def seen4(node):
    """A session with four messages, stored \\Seen in the order 1, 3, 2, 4:
    returns (session, {seq: modseq})."""
    for i in range(4):
        deliver(node, subject=f"esearch modseq {i + 1}")
    c = Raw(node).login()
    c.select()
    c.ok("FETCH 1 (MODSEQ)")
    ms = {}
    for seq in (1, 3, 2, 4):
        ms[seq] = store_seen(c, seq)
    assert ms[1] < ms[3] < ms[2] < ms[4]
    yield c, ms
    c.close()


def test_min_alone_returns_the_modseq_of_the_min_message(seen4):
    c, ms = seen4
    assert esearch(c, 'RETURN (MIN) 1:3 MODSEQ "/flags/\\\\seen" all 1') == f" MIN 1 MODSEQ {ms[1]}"


def test_max_alone_returns_the_modseq_of_the_max_message(seen4):
    c, ms = seen4
    assert esearch(c, 'RETURN (MAX) 1:3 MODSEQ "/flags/\\\\seen" all 1') == f" MAX 3 MODSEQ {ms[3]}"


def test_uid_search_min_and_max_alone(seen4):
    c, ms = seen4
    uids = {}
    for r in c.ok("FETCH 1:4 (UID)"):
        m = re.match(rb"\* (\d+) FETCH \(UID (\d+)\)", r)
        uids[int(m.group(1))] = int(m.group(2))
    tag = c.tag()
    c.send(f"{tag} UID SEARCH RETURN (MAX) 1:3 MODSEQ 1\r\n")
    untagged, tagged = c.wait(tag)
    assert tagged.startswith("OK"), tagged
    assert f'* ESEARCH (TAG "{tag}") UID MAX {uids[3]} MODSEQ {ms[3]}'.encode() in untagged
    tag = c.tag()
    c.send(f"{tag} UID SEARCH RETURN (MIN) 2:3 MODSEQ 1\r\n")
    untagged, tagged = c.wait(tag)
    assert f'* ESEARCH (TAG "{tag}") UID MIN {uids[2]} MODSEQ {ms[2]}'.encode() in untagged


def test_all_and_default_return_the_highest_of_the_matches(seen4):
    c, ms = seen4
    assert esearch(c, 'RETURN () 1:3 MODSEQ "/flags/\\\\seen" all 1') == f" ALL 1:3 MODSEQ {ms[2]}"
    assert esearch(c, f'RETURN (ALL) 2:3 MODSEQ "/flags/\\\\seen" all {ms[3]}') == \
        f" ALL 2:3 MODSEQ {ms[2]}"
    assert esearch(c, f'RETURN (ALL) 2:3 MODSEQ "/flags/\\\\seen" all {ms[2]}') == \
        f" ALL 2 MODSEQ {ms[2]}"
    assert esearch(c, f'RETURN (ALL) 2:3 MODSEQ "/flags/\\\\seen" all {ms[4]}') == ""


def test_min_and_max_together_return_the_higher_of_the_two(seen4):
    c, ms = seen4
    assert esearch(c, 'RETURN (MIN MAX) 2:3 MODSEQ "/flags/\\\\seen" all 1') == \
        f" MIN 2 MAX 3 MODSEQ {ms[2]}"
    # 1:3 has 2 (the highest) between its MIN 1 and MAX 3: only those two count
    assert esearch(c, 'RETURN (MIN MAX) 1:3 MODSEQ 1') == f" MIN 1 MAX 3 MODSEQ {ms[3]}"


def test_count_or_all_with_min_returns_the_highest_of_all_matches(seen4):
    c, ms = seen4
    assert esearch(c, 'RETURN (COUNT) 1:3 MODSEQ 1') == f" COUNT 3 MODSEQ {ms[2]}"
    assert esearch(c, 'RETURN (MIN COUNT) 1:3 MODSEQ 1') == f" MIN 1 COUNT 3 MODSEQ {ms[2]}"
    assert esearch(c, 'RETURN (MAX ALL) 1:3 MODSEQ 1') == f" MAX 3 ALL 1:3 MODSEQ {ms[2]}"


def test_plain_search_still_returns_the_highest(seen4):
    c, ms = seen4
    untagged = c.ok("SEARCH 1:3 MODSEQ 1")
    assert f"* SEARCH 1 2 3 (MODSEQ {ms[2]})".encode() in untagged


def esort(c, criteria):
    """The one ESEARCH line (without its TAG part) of SORT criteria."""
    tag = c.tag()
    c.send(f"{tag} SORT {criteria}\r\n")
    untagged, tagged = c.wait(tag)
    assert tagged.startswith("OK"), tagged
    lines = [r for r in untagged if r.startswith(b"* ESEARCH")]
    assert len(lines) == 1, untagged
    prefix = f'* ESEARCH (TAG "{tag}")'.encode()
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix):].decode()


def test_esort_min_and_max_alone_return_the_modseq_of_that_message(seen4):
    """ESORT (RFC 5267 §3.1) answers with the ESEARCH response and its
    result options, so the rule is the same: MIN and MAX are the first and
    last messages in the sort order, and MODSEQ is theirs (the subjects
    "esearch modseq N" sort as the sequence numbers do)."""
    c, ms = seen4
    assert esort(c, "RETURN (MIN) (REVERSE SUBJECT) UTF-8 1:3 MODSEQ 1") == f" MIN 3 MODSEQ {ms[3]}"
    assert esort(c, "RETURN (MAX) (REVERSE SUBJECT) UTF-8 1:3 MODSEQ 1") == f" MAX 1 MODSEQ {ms[1]}"
    assert esort(c, "RETURN (MIN MAX) (REVERSE SUBJECT) UTF-8 2:4 MODSEQ 1") == \
        f" MIN 4 MAX 2 MODSEQ {ms[4]}"
    assert esort(c, "RETURN (MIN MAX) (SUBJECT) UTF-8 1:3 MODSEQ 1") == \
        f" MIN 1 MAX 3 MODSEQ {ms[3]}"
    assert esort(c, "RETURN (COUNT MIN) (SUBJECT) UTF-8 1:3 MODSEQ 1") == \
        f" MIN 1 COUNT 3 MODSEQ {ms[2]}"
    assert esort(c, "RETURN (ALL) (REVERSE SUBJECT) UTF-8 1:3 MODSEQ 1") == \
        f" ALL 3,2,1 MODSEQ {ms[2]}"
