"""SEARCH in IMAP4rev2's forms (RFC 9051): after ENABLE IMAP4rev2 a SEARCH
without RETURN is answered with "* ESEARCH (TAG ...) [UID] ALL set"
(§6.4.4, §7.3.4), never "* SEARCH"; LARGER and SMALLER take number64
(§9), in either protocol version.

test_rev2_search_answers_with_esearch needs ENABLE IMAP4rev2 to set the
session's rev2 flag (the IMAP4rev2 work): it fails until that lands."""

import pytest

from imap_helpers import Raw, imap_node


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def session(node, n=3):
    c = Raw(node).login()
    for i in range(1, n + 1):
        _, t = c.cmd_literal("APPEND INBOX", f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode())
        assert t.startswith("OK"), t
    return c


def raw(c, tag, line):
    c.send(f"{tag} {line}\r\n")
    return c.wait(tag)


def test_search_larger_smaller_number64(node):
    """RFC 9051 §9: LARGER/SMALLER number64 (0..2^63-1): a size beyond 32
    bits is a valid key (nothing is that large), one beyond 63 bits BAD."""
    with session(node) as c:
        c.select("INBOX")
        assert c.search("LARGER 4294967296") == []
        assert c.search("SMALLER 9223372036854775807") == [1, 2, 3]
        assert c.search("OR LARGER 9223372036854775807 SMALLER 4294967297") == [1, 2, 3]
        for bad in ("SEARCH LARGER 9223372036854775808", "SEARCH SMALLER 99999999999999999999",
                    "SEARCH LARGER -1"):
            _, t = c.cmd(bad)
            assert t.startswith("BAD"), (bad, t)
        assert c.search("ALL") == [1, 2, 3]


def test_rev2_search_answers_with_esearch(node):
    """RFC 9051 §6.4.4: "A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM
    "Smith"" is answered with "* ESEARCH (TAG "A282") ALL ...", UID SEARCH
    with "UID", an empty result with no ALL; RETURN options as before;
    after ENABLE IMAP4rev1-only sessions keep "* SEARCH"."""
    with session(node) as c:
        u, t = c.cmd("ENABLE IMAP4rev2")
        assert t.startswith("OK"), t
        assert b"* ENABLED IMAP4rev2" in u, u
        c.select("INBOX")
        c.ok("STORE 1,3 +FLAGS.SILENT (\\Flagged)")
        u, t = raw(c, "A282", 'SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"')
        assert t.startswith("OK"), t
        assert u == [b'* ESEARCH (TAG "A282") ALL 1,3']
        u, t = raw(c, "A283", "UID SEARCH ALL")
        assert u == [b'* ESEARCH (TAG "A283") UID ALL 1:3']
        u, t = raw(c, "A284", "SEARCH DELETED")
        assert u == [b'* ESEARCH (TAG "A284")']
        u, t = raw(c, "A285", "SEARCH RETURN (COUNT) ALL")
        assert u == [b'* ESEARCH (TAG "A285") COUNT 3']
    with session(node, n=0) as c:     # not enabled: IMAP4rev1's answer
        c.select("INBOX")
        u, t = raw(c, "B1", "SEARCH ALL")
        assert u == [b"* SEARCH 1 2 3"]
