"""LIST and names that do not exist but have children (a parent left by
DELETE): "%" returns such a level of hierarchy, \\Noselect in RFC 3501's
LIST (6.3.8) and \\NonExistent in LIST-EXTENDED's (RFC 5258 example 11);
"*" returns only names that exist (RFC 5258 3.4 and example 9, D01), unless
a selection option (SUBSCRIBED) or RECURSIVEMATCH's CHILDINFO asks for it.
With SUBSCRIBED, SPECIAL-USE and RECURSIVEMATCH, CHILDINFO names only
SUBSCRIBED: RFC 5258's childinfo-extended-item lists base selection
options, and SPECIAL-USE is not one (RFC 6154 section 6)."""

import pytest

from imap_helpers import Raw, imap_node

DEFAULTS = (b"INBOX", b"Drafts", b"Sent", b"Trash", b"Junk", b"Archive")


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def lines(c, command):
    """The LIST responses, without the folders every account has."""
    out = []
    for r in c.ok(command):
        assert r.startswith(b"* LIST "), r
        name = r.rsplit(b" ", 1)[1].strip(b'"')
        if name not in DEFAULTS:
            out.append(r)
    return out


def test_star_lists_only_what_exists(node):
    with Raw(node).login() as c:
        c.ok("CREATE a/b/c")
        c.ok("DELETE a/b")
        c.ok("DELETE a")
        assert lines(c, 'LIST "" *') == [b'* LIST (\\HasNoChildren) "/" a/b/c']
        assert lines(c, 'LIST "" a*') == [b'* LIST (\\HasNoChildren) "/" a/b/c']
        assert lines(c, 'LIST () "" *') == [b'* LIST (\\HasNoChildren) "/" a/b/c']
        # the name itself, asked for by "*": still not listed
        assert lines(c, 'LIST "" a/b*') == [b'* LIST (\\HasNoChildren) "/" a/b/c']


def test_percent_lists_the_missing_levels(node):
    with Raw(node).login() as c:
        c.ok("CREATE a/b/c")
        c.ok("DELETE a/b")
        c.ok("DELETE a")
        assert lines(c, 'LIST "" %') == [b'* LIST (\\Noselect \\HasChildren) "/" a']
        assert lines(c, 'LIST "" a/%') == [b'* LIST (\\Noselect \\HasChildren) "/" a/b']
        assert lines(c, 'LIST () "" a/%') == [b'* LIST (\\NonExistent \\HasChildren) "/" a/b']
        assert lines(c, 'LIST "" a/b/%') == [b'* LIST (\\HasNoChildren) "/" a/b/c']
        # "%" and "*" together: the level is listed for the "%"
        assert lines(c, 'LIST "" (% a/*)') == [
            b'* LIST (\\NonExistent \\HasChildren) "/" a',
            b'* LIST (\\HasNoChildren) "/" a/b/c']


def test_subscribed_missing_name_is_listed(node):
    """RFC 5258 3.4 condition 1: the name meets the selection (SUBSCRIBED)."""
    with Raw(node).login() as c:
        c.ok("CREATE x/y")
        c.ok("SUBSCRIBE x")
        c.ok("DELETE x")
        assert lines(c, 'LIST (SUBSCRIBED) "" *') == [
            b'* LIST (\\NonExistent \\HasChildren \\Subscribed) "/" x']


def test_childinfo_names_only_subscribed(node):
    with Raw(node).login() as c:
        c.ok("CREATE p/Mine (USE (\\Archive))")
        c.ok("SUBSCRIBE p/Mine")
        assert lines(c, 'LIST (SUBSCRIBED SPECIAL-USE RECURSIVEMATCH) "" %') == [
            b'* LIST (\\HasChildren) "/" p ("CHILDINFO" ("SUBSCRIBED"))']
