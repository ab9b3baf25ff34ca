"""CREATE-SPECIAL-USE (RFC 6154 section 3): CREATE's USE parameter gives the
new mailbox its special use, LIST shows it (and LIST (SPECIAL-USE) selects
it), a use the server does not support gets NO [USEATTR] and nothing is
created."""

import re

import pytest

from imap_helpers import Raw, capabilities, imap_node


@pytest.fixture
def c(make_ternd):
    node = imap_node(make_ternd)
    with Raw(node).login() as client:
        yield client


def list_line(c, args, name):
    lines = [r for r in c.ok(f"LIST {args}") if r.endswith(b" " + name.encode())
             or r.endswith(b' "' + name.encode() + b'"')]
    assert len(lines) == 1, (args, lines)
    m = re.match(rb"\* LIST \(([^)]*)\)", lines[0])
    assert m, lines[0]
    return m.group(1).split()


def names(c, args):
    return [r.rsplit(b" ", 1)[1].strip(b'"').decode() for r in c.ok(f"LIST {args}")]


def test_capability_create_special_use(c):
    """RFC 6154 section 3: a server that supports USE advertises
    CREATE-SPECIAL-USE."""
    assert "CREATE-SPECIAL-USE" in capabilities(c.ok("CAPABILITY"))


def test_create_with_use_rfc6154_example(c):
    """RFC 6154 section 5.3: `t2 CREATE MySpecial (USE (\\Drafts \\Sent))` is
    refused with NO [USEATTR] (one use per mailbox here), `t3 CREATE MySpecial
    (USE (\\Drafts))` creates it, and LIST shows \\Drafts."""
    _, t = c.cmd(r"CREATE MySpecial (USE (\Drafts \Sent))")
    assert t.startswith("NO [USEATTR]"), t
    assert "MySpecial" not in names(c, '"" *')
    c.ok(r"CREATE MySpecial (USE (\Drafts))")
    assert b"\\Drafts" in list_line(c, '"" MySpecial', "MySpecial")


def test_create_archive(c):
    """create-param = "USE" SP "(" [use-attr *(SP use-attr)] ")":
    `CREATE MyArchive (USE (\\Archive))` makes an \\Archive mailbox; LIST
    (SPECIAL-USE) lists it and RETURN (SPECIAL-USE) shows the attribute."""
    c.ok(r"CREATE MyArchive (USE (\Archive))")
    assert b"\\Archive" in list_line(c, '"" MyArchive', "MyArchive")
    assert "MyArchive" in names(c, '(SPECIAL-USE) "" *')
    assert b"\\Archive" in list_line(c, '"" MyArchive RETURN (SPECIAL-USE)', "MyArchive")
    c.ok("SELECT MyArchive")


def test_create_unknown_use_is_useattr(c):
    """RFC 6154 section 3: a use-attr the server cannot give (unknown, or not
    a use at all) gets NO [USEATTR] and no mailbox is made."""
    for use in (r"\Bogus", r"\Noselect", "Archive"):
        _, t = c.cmd(f"CREATE Odd (USE ({use}))")
        assert t.startswith("NO [USEATTR]"), (use, t)
    assert "Odd" not in names(c, '"" *')


def test_create_empty_use_and_bad_params(c):
    """USE with an empty list makes a plain mailbox; an unknown create
    parameter is a syntax error (BAD), and the session goes on."""
    c.ok("CREATE Plain (USE ())")
    attrs = list_line(c, '"" Plain', "Plain")
    assert not [a for a in attrs if a in (b"\\Archive", b"\\Drafts", b"\\Sent", b"\\Junk",
                                            b"\\Trash", b"\\All", b"\\Flagged")], attrs
    _, t = c.cmd(r"CREATE Other (FROB (\Archive))")
    assert t.startswith("BAD"), t
    c.ok("NOOP")
