"""LIST-EXTENDED (RFC 5258) CHILDINFO end to end: with RECURSIVEMATCH a
mailbox that matches the pattern carries CHILDINFO ("SUBSCRIBED") when a
descendant is subscribed but not listed because the pattern does not match
it (section 3.5: no redundant responses), never for a descendant that is in
the reply itself. The examples of RFC 5258 section 5 (8, 9, 10, 11) are run
on Tern's hierarchy (delimiter "/", like the RFC's).

Tern sends \\HasChildren or \\HasNoChildren on every LIST response (section 4
allows that without RETURN (CHILDREN)) and writes a name as an atom when it
can, where the RFC quotes it: an RFC line is compared after parsing, with
those two attributes left out unless the example asked RETURN (CHILDREN);
where the RFC line has neither, it is compared byte for byte."""

from collections import Counter

import pytest

from imap_helpers import Raw, imap_node, parse_sexp

DEFAULT_FOLDERS = {"INBOX", "Sent", "Drafts", "Trash", "Junk"}
CHILD_ATTRS = {"\\haschildren", "\\hasnochildren"}


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def session(node):
    """A logged-in session; Tern subscribes its default folders, which the
    RFC's examples do not have: they are unsubscribed first."""
    c = Raw(node).login()
    for name in DEFAULT_FOLDERS:
        c.ok(f"UNSUBSCRIBE {name}")
    return c


def canon(line, children=True):
    """A LIST response as (attributes, delimiter, name, extended data), with
    the attributes lowercased and unordered; without \\Has(No)Children
    unless children."""
    assert line.startswith(b"* LIST "), line
    items = parse_sexp(line, len(b"* LIST "))
    assert len(items) in (3, 4), line
    attrs = {str(a).lower() for a in items[0]}
    if not children:
        attrs -= CHILD_ATTRS
    name = items[2].decode() if isinstance(items[2], bytes) else str(items[2])
    ext = _plain(items[3]) if len(items) == 4 else None
    return (frozenset(attrs), _plain(items[1]), name, ext)


def _plain(x):
    if isinstance(x, list):
        return tuple(_plain(e) for e in x)
    return x.decode() if isinstance(x, bytes) else str(x)


def listed(c, command, children=False, keep_defaults=False):
    """The LIST responses of command, canonical, as a list (in reply order)."""
    untagged = c.ok(command)
    out = []
    for r in untagged:
        if r.startswith(b"* LIST "):
            k = canon(r, children)
            if keep_defaults or k[2] not in DEFAULT_FOLDERS:
                out.append(k)
    return out


def expect(rfc_lines, children=False):
    return [canon(line.encode(), children) for line in rfc_lines]


def raw_lines(c, command):
    return [r for r in c.ok(command) if r.startswith(b"* LIST ")]


# ------------------------------------------------------------ the case

def test_listed_subscribed_child_gives_its_parent_no_childinfo(node):
    """a/b not subscribed, a/b/c subscribed: with both names in the pattern,
    a/b/c is listed and a/b has nothing to report (RFC 5258 3.5)."""
    with session(node) as c:
        c.ok("CREATE a/b/c")
        c.ok("SUBSCRIBE a/b/c")
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" (a/b a/b/c)') == \
            [b'* LIST (\\HasNoChildren \\Subscribed) "/" a/b/c']
        # the other order of the patterns changes nothing
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" (a/b/c a/b)') == \
            [b'* LIST (\\HasNoChildren \\Subscribed) "/" a/b/c']
        # a pattern that leaves a/b/c out: now a/b reports it
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" (a/b)') == \
            [b'* LIST (\\HasChildren) "/" a/b ("CHILDINFO" ("SUBSCRIBED"))']
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" a/%') == \
            [b'* LIST (\\HasChildren) "/" a/b ("CHILDINFO" ("SUBSCRIBED"))']
        # "*" lists a/b/c itself: neither a nor a/b is reported
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" a*') == \
            [b'* LIST (\\HasNoChildren \\Subscribed) "/" a/b/c']
        # "%" and "a/%" at once: a reports a/b/c (no pattern matches it),
        # and so does a/b
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" (% a/%)') == [
            b'* LIST (\\HasChildren) "/" a ("CHILDINFO" ("SUBSCRIBED"))',
            b'* LIST (\\HasChildren) "/" a/b ("CHILDINFO" ("SUBSCRIBED"))']
        # (a a/b/c): a/b/c is listed, so a has nothing to report
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" (a a/b/c)') == \
            [b'* LIST (\\HasNoChildren \\Subscribed) "/" a/b/c']


def test_subscribed_parent_childinfo_only_for_unlisted_children(node):
    """A subscribed mailbox is listed anyway; it carries CHILDINFO only when
    a subscribed descendant is left out of the reply."""
    with session(node) as c:
        c.ok("CREATE Vegetable/Broccoli")
        c.ok("CREATE Vegetable/Corn")
        c.ok("SUBSCRIBE Vegetable")
        c.ok("SUBSCRIBE Vegetable/Broccoli")
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" Veg*') == [
            b'* LIST (\\HasChildren \\Subscribed) "/" Vegetable',
            b'* LIST (\\HasNoChildren \\Subscribed) "/" Vegetable/Broccoli']
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" %') == [
            b'* LIST (\\HasChildren \\Subscribed) "/" Vegetable ("CHILDINFO" ("SUBSCRIBED"))']
        # without RECURSIVEMATCH there is never CHILDINFO (3.5: MUST NOT)
        assert raw_lines(c, 'LIST (SUBSCRIBED) "" %') == [
            b'* LIST (\\HasChildren \\Subscribed) "/" Vegetable']
        assert raw_lines(c, 'LIST "" % RETURN (SUBSCRIBED)')[-1] == \
            b'* LIST (\\HasChildren \\Subscribed) "/" Vegetable'
        # RECURSIVEMATCH alone is refused (3.1), and the session goes on
        _, t = c.cmd('LIST (RECURSIVEMATCH) "" %')
        assert t.startswith("BAD"), t
        c.ok("NOOP")


# ------------------------------------------------------------ RFC 5258 section 5, example 8

def test_rfc5258_example_8(node):
    with session(node) as c:
        for name in ("Foo/Bar", "Foo/Baz", "Moo"):
            c.ok(f"CREATE {name}")
        # C01 LIST "" "*" (less Tern's default folders)
        assert listed(c, 'LIST "" "*"') == expect([
            '* LIST () "/" "Foo"',
            '* LIST () "/" "Foo/Bar"',
            '* LIST () "/" "Foo/Baz"',
            '* LIST () "/" "Moo"'])
        # CA3 LIST "" "%" RETURN (CHILDREN)
        assert listed(c, 'LIST "" "%" RETURN (CHILDREN)', children=True) == expect([
            '* LIST (\\HasChildren) "/" "Foo"',
            '* LIST (\\HasNoChildren) "/" "Moo"'], children=True)

        # A) only Foo/Baz is subscribed
        c.ok("SUBSCRIBE Foo/Baz")
        assert listed(c, 'LIST (SUBSCRIBED) "" "*"', keep_defaults=True) == expect([
            '* LIST (\\Subscribed) "/" "Foo/Baz"'])
        assert listed(c, 'LIST (SUBSCRIBED) "" "%"', keep_defaults=True) == []
        assert listed(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', keep_defaults=True) == expect([
            '* LIST () "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))'])

        # A1) Foo subscribed as well
        c.ok("SUBSCRIBE Foo")
        assert listed(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', keep_defaults=True) == expect([
            '* LIST (\\Subscribed) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))'])
        assert listed(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)',
                      children=True, keep_defaults=True) == expect([
            '* LIST (\\Subscribed \\HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))'],
            children=True)

        # B) nothing subscribed: nothing, though Foo has children
        c.ok("UNSUBSCRIBE Foo")
        c.ok("UNSUBSCRIBE Foo/Baz")
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == []

        # C) only Foo and Moo subscribed: exact bytes but for the quotes
        c.ok("SUBSCRIBE Foo")
        c.ok("SUBSCRIBE Moo")
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)') == [
            b'* LIST (\\HasChildren \\Subscribed) "/" Foo',
            b'* LIST (\\HasNoChildren \\Subscribed) "/" Moo']

        # A2) Foo does not exist and is not subscribed (Tern's DELETE of a
        # folder with children leaves them, so Foo becomes \NonExistent)
        c.ok("UNSUBSCRIBE Foo")
        c.ok("UNSUBSCRIBE Moo")
        c.ok("SUBSCRIBE Foo/Baz")
        c.ok("DELETE Foo")
        assert listed(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', keep_defaults=True) == expect([
            '* LIST (\\NonExistent) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))'])


# ------------------------------------------------------------ example 9

EXAMPLE_9_FOLDERS = ("foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222",
                     "eps2/mamba", "qux2/bar2")
EXAMPLE_9_SUBSCRIBED = ("foo2/bar1", "foo2/bar2", "baz2/bar2", "baz2/bar22", "baz2/bar222",
                        "eps2", "eps2/mamba", "qux2/bar2")


def test_rfc5258_example_9(node):
    """CHILDINFO is returned whether or not the children match the pattern
    ... but not when every subscribed child is itself in the reply."""
    with session(node) as c:
        for name in EXAMPLE_9_FOLDERS:
            c.ok(f"CREATE {name}")
        c.ok("DELETE qux2")        # the RFC's hierarchy has qux2/bar2 without qux2
        for name in EXAMPLE_9_SUBSCRIBED:
            c.ok(f"SUBSCRIBE {name}")
        # D01
        assert Counter(listed(c, 'LIST "" "*"')) == Counter(expect([
            '* LIST () "/" "foo2"',
            '* LIST () "/" "foo2/bar1"',
            '* LIST () "/" "foo2/bar2"',
            '* LIST () "/" "baz2"',
            '* LIST () "/" "baz2/bar2"',
            '* LIST () "/" "baz2/bar22"',
            '* LIST () "/" "baz2/bar222"',
            '* LIST () "/" "eps2"',
            '* LIST () "/" "eps2/mamba"',
            '* LIST () "/" "qux2/bar2"']))   # not qux2: it does not exist
        # D02
        assert Counter(listed(c, 'LIST (SUBSCRIBED) "" "*"', keep_defaults=True)) == Counter(expect([
            '* LIST (\\Subscribed) "/" "foo2/bar1"',
            '* LIST (\\Subscribed) "/" "foo2/bar2"',
            '* LIST (\\Subscribed) "/" "baz2/bar2"',
            '* LIST (\\Subscribed) "/" "baz2/bar22"',
            '* LIST (\\Subscribed) "/" "baz2/bar222"',
            '* LIST (\\Subscribed) "/" "eps2"',
            '* LIST (\\Subscribed) "/" "eps2/mamba"',
            '* LIST (\\Subscribed) "/" "qux2/bar2"']))
        # D03: baz2 and qux2 are left out, as the SHOULD NOT of 3.5 asks
        d03 = listed(c, 'LIST (RECURSIVEMATCH SUBSCRIBED) "" "*2"', keep_defaults=True)
        assert len(d03) == len(set(d03)) == 7, d03
        assert Counter(d03) == Counter(expect([
            '* LIST () "/" "foo2" ("CHILDINFO" ("SUBSCRIBED"))',
            '* LIST (\\Subscribed) "/" "foo2/bar2"',
            '* LIST (\\Subscribed) "/" "baz2/bar2"',
            '* LIST (\\Subscribed) "/" "baz2/bar22"',
            '* LIST (\\Subscribed) "/" "baz2/bar222"',
            '* LIST (\\Subscribed) "/" "eps2" ("CHILDINFO" ("SUBSCRIBED"))',
            '* LIST (\\Subscribed) "/" "qux2/bar2"']))
        # D04
        d04 = listed(c, 'LIST (RECURSIVEMATCH SUBSCRIBED) "" "%2"', keep_defaults=True)
        assert Counter(d04) == Counter(expect([
            '* LIST () "/" "foo2" ("CHILDINFO" ("SUBSCRIBED"))',
            '* LIST () "/" "baz2" ("CHILDINFO" ("SUBSCRIBED"))',
            '* LIST (\\Subscribed) "/" "eps2" ("CHILDINFO" ("SUBSCRIBED"))',
            '* LIST (\\NonExistent) "/" "qux2" ("CHILDINFO" ("SUBSCRIBED"))']))


# ------------------------------------------------------------ example 10

def test_rfc5258_example_10(node):
    """CHILDINFO does not imply \\HasChildren: the subscribed child does
    not exist. a3 is compared byte for byte."""
    with session(node) as c:
        c.ok("CREATE foo")
        c.ok("SUBSCRIBE foo/bar")
        # a1
        assert listed(c, 'LIST "" ("foo" "foo/*")') == expect(['* LIST () "/" foo'])
        # a2
        assert listed(c, 'LIST (SUBSCRIBED) "" "foo/*"', keep_defaults=True) == expect([
            '* LIST (\\Subscribed \\NonExistent) "/" foo/bar'])
        # a3, byte for byte
        assert raw_lines(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" foo RETURN (CHILDREN)') == [
            b'* LIST (\\HasNoChildren) "/" foo ("CHILDINFO" ("SUBSCRIBED"))']


# ------------------------------------------------------------ example 11

def test_rfc5258_example_11(node):
    """A parent that does not exist: \\NonExistent \\HasChildren, without
    RECURSIVEMATCH. a2 byte for byte (Tern has no remote mailboxes, so a1
    and a3 do not apply)."""
    with session(node) as c:
        c.ok("CREATE music/rock")
        c.ok("DELETE music")
        lines = [r for r in raw_lines(c, 'LIST () "" %')
                 if canon(r)[2] not in DEFAULT_FOLDERS]
        assert lines == [b'* LIST (\\NonExistent \\HasChildren) "/" music']
