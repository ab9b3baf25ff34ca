"""IMAP4rev2 (RFC 9051) beside IMAP4rev1 end to end: both are advertised,
ENABLE IMAP4rev2 (RFC 9051 6.3.1) switches the session to rev2's forms of
answers, and a session that does not enable it keeps every rev1 answer.
One test per difference, each also checking the rev1 session:

- SELECT/EXAMINE: no "* n RECENT", no "OK [UNSEEN n]", and a "* LIST"
  response for the mailbox (RFC 9051 6.3.2, 6.3.3);
- \\Recent: never in FLAGS; a rev2 session claims nothing, so rev1 sessions
  still see the messages as recent; no RECENT on NOOP;
- STATUS: RECENT is not an item (BAD); DELETED and SIZE are (RFC 9051
  6.3.11); DELETED is accepted in rev1 too;
- mailbox names are UTF-8 on the wire, never modified UTF-7 (RFC 9051 5.1);
- LIST says \\NonExistent (RFC 9051 7.3.1) where rev1's LIST says \\Noselect;
- unsolicited FETCH carries UID (RFC 9051 appendix E);
- the RFC822* FETCH items rev2 dropped are still answered.
The SEARCH answer (ESEARCH in rev2) is tested with SEARCH."""

import re

import pytest

from imap_helpers import Raw, capabilities, imap_node, parse_sexp, status_of


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def session(node, rev2=False):
    c = Raw(node).login()
    if rev2:
        assert c.ok("ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2"]
    return c


def append(c, folder, n, flags=""):
    for i in range(n):
        _, t = c.cmd_literal(f"APPEND {folder}{' ' + flags if flags else ''}",
                             f"Subject: rev2 {i}\r\n\r\nbody {i}\r\n".encode())
        assert t.startswith("OK"), t


def flags_of(c, uid=False):
    d = c.fetch("1:*", "FLAGS", uid=uid)
    return {seq: {str(f) for f in v["FLAGS"]} for seq, v in d.items()}


# ---- capability and ENABLE


def test_capability_advertises_imap4rev2(node):
    """RFC 9051 7.2.2: a server that speaks both lists both, before and
    after login."""
    with Raw(node) as c:
        assert {"IMAP4REV1", "IMAP4REV2"} <= capabilities(c.ok("CAPABILITY"))
        c.login()
        assert {"IMAP4REV1", "IMAP4REV2"} <= capabilities(c.ok("CAPABILITY"))


def test_enable_imap4rev2_reports_it_once(node):
    """RFC 5161 3.1 / RFC 9051 6.3.1: ENABLED lists what the command newly
    enabled; again, nothing; case-insensitive; beside other tokens."""
    with session(node) as c:
        assert c.ok("ENABLE imap4REV2") == [b"* ENABLED IMAP4rev2"]
        assert c.ok("ENABLE IMAP4rev2") == [b"* ENABLED"]
        assert c.ok("ENABLE IMAP4rev2 CONDSTORE") == [b"* ENABLED CONDSTORE"]
    with session(node) as c:
        assert c.ok("ENABLE CONDSTORE IMAP4rev2 X-UNKNOWN") == [b"* ENABLED CONDSTORE IMAP4rev2"]
    # not before login: ENABLE is an authenticated-state command
    with Raw(node) as c:
        _, t = c.cmd("ENABLE IMAP4rev2")
        assert t.startswith("BAD") or t.startswith("NO"), t
        c.login()
        assert c.ok("ENABLE IMAP4rev2") == [b"* ENABLED IMAP4rev2"]


# ---- SELECT / EXAMINE


def select_shape(untagged):
    """The untagged responses of a SELECT with the numbers and texts taken
    out, so the shape can be compared."""
    return [re.sub(rb"\d+", b"n", r.split(b"]")[0]) for r in untagged]


def test_select_rev2_has_list_and_no_recent_or_unseen(node):
    """RFC 9051 6.3.2: REQUIRED untagged FLAGS, EXISTS, LIST; OK
    PERMANENTFLAGS, UIDNEXT, UIDVALIDITY. The example's LIST line is
    '* LIST () "/" INBOX': Tern adds the attributes LIST gives INBOX."""
    with session(node) as a:
        append(a, "INBOX", 2)
    with session(node, rev2=True) as c:
        untagged, t = c.cmd("SELECT INBOX")
        assert t.startswith("OK [READ-WRITE]"), t
        assert b"* 2 EXISTS" in untagged
        assert b'* LIST (\\HasNoChildren) "/" INBOX' in untagged, untagged
        assert not [r for r in untagged if r.endswith(b" RECENT")], untagged
        assert not [r for r in untagged if r.startswith(b"* OK [UNSEEN")], untagged
        assert [r for r in untagged if r.startswith(b"* FLAGS (")]
        assert [r for r in untagged if r.startswith(b"* OK [PERMANENTFLAGS (")]
        assert [r for r in untagged if r.startswith(b"* OK [UIDNEXT 3]")]
        assert [r for r in untagged if r.startswith(b"* OK [UIDVALIDITY ")]
        # the mailbox's own name, whatever case was asked for
        untagged, t = c.cmd("EXAMINE inbox")
        assert t.startswith("OK [READ-ONLY]"), t
        # the previous mailbox closed first (RFC 9051 7.1 CLOSED)
        assert untagged[0].startswith(b"* OK [CLOSED]"), untagged
        assert b'* LIST (\\HasNoChildren) "/" INBOX' in untagged, untagged
        assert not [r for r in untagged if r.endswith(b" RECENT")], untagged
    with session(node) as c:   # rev1: RECENT and UNSEEN, no LIST
        untagged = c.select("INBOX")
        assert [r for r in untagged if re.fullmatch(rb"\* \d+ RECENT", r)], untagged
        assert [r for r in untagged if r.startswith(b"* OK [UNSEEN 1]")], untagged
        assert not [r for r in untagged if r.startswith(b"* LIST")], untagged


def test_select_rev2_list_has_the_attributes_list_gives(node):
    """RFC 9051 6.3.2: the LIST response's attributes are accurate: children
    and special use (Sent is made with the account) as LIST reports them."""
    with session(node, rev2=True) as c:
        c.ok("CREATE Parent/Child")
        untagged = c.ok("EXAMINE Parent")
        assert b'* LIST (\\HasChildren) "/" Parent' in untagged, untagged
        assert b'* LIST (\\HasNoChildren) "/" Parent/Child' in c.ok("SELECT Parent/Child")
        assert b'* LIST (\\HasNoChildren \\Sent) "/" Sent' in c.ok("SELECT Sent")
        # and LIST agrees
        assert c.ok('LIST "" Sent') == [b'* LIST (\\HasNoChildren \\Sent) "/" Sent']


# ---- \Recent


def test_rev2_session_shows_and_claims_no_recent(node):
    """RFC 9051 dropped \\Recent: no RECENT response on SELECT or NOOP, no
    \\Recent in FLAGS. The rev2 session claims nothing, so a rev1 session
    selecting later still gets the messages as recent."""
    with session(node) as a:
        a.ok("CREATE Box")
        append(a, "Box", 2)
        with session(node, rev2=True) as c:
            untagged = c.select("Box")
            assert not [r for r in untagged if r.endswith(b" RECENT")], untagged
            assert flags_of(c) == {1: set(), 2: set()}
            # a new message arrives: EXISTS without RECENT
            append(a, "Box", 1)
            untagged = c.ok("NOOP")
            assert untagged == [b"* 3 EXISTS"], untagged
            assert all("\\Recent" not in f for f in flags_of(c).values())
            # STORE's answer shows no \Recent either
            assert c.ok("STORE 3 +FLAGS (\\Flagged)") == [b"* 3 FETCH (FLAGS (\\Flagged))"]
        # rev1: the three are still recent, claimed now
        with session(node) as b:
            untagged = b.select("Box")
            assert b"* 3 RECENT" in untagged, untagged
            assert all("\\Recent" in f for f in flags_of(b).values())


# ---- STATUS


def test_status_recent_is_bad_in_rev2(node):
    """RFC 9051 6.3.11 status-att has no RECENT: a BAD, and the session goes
    on; rev1 keeps it (RFC 3501 6.3.10)."""
    with session(node, rev2=True) as c:
        _, t = c.cmd("STATUS INBOX (MESSAGES RECENT)")
        assert t.startswith("BAD"), t
        _, t = c.cmd('LIST "" INBOX RETURN (STATUS (RECENT))')
        assert t.startswith("BAD"), t
        assert c.ok("STATUS INBOX (MESSAGES)") == [b"* STATUS INBOX (MESSAGES 0)"]
    with session(node) as c:
        assert c.ok("STATUS INBOX (MESSAGES RECENT)") == [b"* STATUS INBOX (MESSAGES 0 RECENT 0)"]


def test_status_deleted_and_size(node):
    """RFC 9051 6.3.11: DELETED is the number of messages with \\Deleted,
    SIZE the total size; the RFC's example (A042) in exact bytes of form:
    items as asked. DELETED is accepted without rev2 too."""
    with session(node, rev2=True) as c:
        c.ok("CREATE blurdybloop")
        assert c.ok("STATUS blurdybloop (UIDNEXT MESSAGES)") == \
            [b"* STATUS blurdybloop (UIDNEXT 1 MESSAGES 0)"]
        assert c.ok("STATUS blurdybloop (DELETED)") == [b"* STATUS blurdybloop (DELETED 0)"]
        append(c, "blurdybloop", 3)
        append(c, "blurdybloop", 2, flags="(\\Deleted \\Seen)")
        assert status_of(c.ok("STATUS blurdybloop (MESSAGES DELETED SIZE)")) == \
            {"MESSAGES": 5, "DELETED": 2, "SIZE": sum(len(f"Subject: rev2 {i}\r\n\r\nbody {i}\r\n")
                                                     for i in (0, 1, 2, 0, 1))}
        # the count follows STORE and EXPUNGE
        c.select("blurdybloop")
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        assert status_of(c.ok("STATUS blurdybloop (DELETED)")) == {"DELETED": 3}
        c.ok("EXPUNGE")
        assert status_of(c.ok("STATUS blurdybloop (DELETED MESSAGES)")) == {"DELETED": 0, "MESSAGES": 2}
        # and in LIST-STATUS
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        untagged = c.ok('LIST "" blurdybloop RETURN (STATUS (DELETED))')
        assert b"* STATUS blurdybloop (DELETED 1)" in untagged, untagged
        # a missing mailbox
        _, t = c.cmd("STATUS nosuch (DELETED)")
        assert t.startswith("NO [NONEXISTENT]"), t
    with session(node) as c:   # rev1 takes DELETED as well; the rev2 session claimed no \Recent
        assert c.ok("STATUS blurdybloop (DELETED RECENT)") == \
            [b"* STATUS blurdybloop (DELETED 1 RECENT 2)"]


# ---- mailbox names


def test_mailbox_names_are_utf8_in_rev2(node):
    """RFC 9051 5.1: mailbox names are UTF-8; a rev2 client sends and gets
    them raw, and '&' is just a character. A rev1 session sees the same
    folders in modified UTF-7 (RFC 3501 5.1.3)."""
    with session(node, rev2=True) as c:
        c.ok('CREATE "Entw\u00fcrfe"'.encode())
        c.ok(b'CREATE "R&D"')
        untagged = c.ok('LIST "" "*"')
        assert '* LIST (\\HasNoChildren) "/" "Entw\u00fcrfe"'.encode() in untagged, untagged
        assert b'* LIST (\\HasNoChildren) "/" R&D' in untagged, untagged
        untagged = c.ok('SELECT "Entw\u00fcrfe"'.encode())
        assert '* LIST (\\HasNoChildren) "/" "Entw\u00fcrfe"'.encode() in untagged, untagged
        assert c.ok('STATUS "Entw\u00fcrfe" (MESSAGES)'.encode()) == \
            ['* STATUS "Entw\u00fcrfe" (MESSAGES 0)'.encode()]
        # modified UTF-7 is not decoded: this names a folder that does not exist
        _, t = c.cmd(b'STATUS "Entw&APw-rfe" (MESSAGES)')
        assert t.startswith("NO [NONEXISTENT]"), t
        # a pattern is UTF-8 as well
        assert c.ok('LIST "" "Entw\u00fc*"'.encode()) == \
            ['* LIST (\\HasNoChildren) "/" "Entw\u00fcrfe"'.encode()]
    with session(node) as c:
        untagged = c.ok('LIST "" "*"')
        assert b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe' in untagged, untagged
        assert b'* LIST (\\HasNoChildren) "/" R&-D' in untagged, untagged


# ---- LIST


def test_list_nonexistent_parent_in_rev2(node):
    """RFC 9051 7.3.1: \\NonExistent (which implies \\Noselect) is an
    attribute rev2 clients know; a rev1 client's basic LIST keeps
    \\Noselect (RFC 3501 6.3.8)."""
    with session(node, rev2=True) as c:
        c.ok("CREATE a/b")
        c.ok("DELETE a")
        assert c.ok('LIST "" "a%"') == [b'* LIST (\\NonExistent \\HasChildren) "/" a']
    with session(node) as c:
        assert c.ok('LIST "" "a%"') == [b'* LIST (\\Noselect \\HasChildren) "/" a']
        assert c.ok('LIST () "" "a%"') == [b'* LIST (\\NonExistent \\HasChildren) "/" a']


# ---- FETCH


def test_unsolicited_fetch_has_uid_in_rev2(node):
    """RFC 9051 appendix E: every unsolicited FETCH carries UID. Rev1
    without CONDSTORE keeps the plain form (RFC 3501 7.4.2)."""
    with session(node) as a:
        append(a, "INBOX", 1)
        with session(node, rev2=True) as c, session(node) as old:
            c.select("INBOX")
            old.select("INBOX")
            a.select("INBOX")
            a.ok("STORE 1 +FLAGS.SILENT (\\Answered)")
            assert c.ok("NOOP") == [b"* 1 FETCH (UID 1 FLAGS (\\Answered))"]
            assert old.ok("NOOP") == [b"* 1 FETCH (FLAGS (\\Answered \\Recent))"]


def test_rfc822_fetch_items_still_answered_in_rev2(node):
    """RFC 9051 dropped RFC822, RFC822.HEADER and RFC822.TEXT from FETCH
    (clients use BODY[]); Tern still answers them, as rev1 does, so a client
    that mixes the two keeps working. RFC822.SIZE is in both."""
    msg = b"Subject: r\r\n\r\nbody\r\n"
    with session(node, rev2=True) as c:
        _, t = c.cmd_literal("APPEND INBOX", msg)
        assert t.startswith("OK"), t
        c.select("INBOX")
        d = c.fetch("1", "(RFC822.SIZE RFC822.HEADER RFC822.TEXT)")[1]
        assert int(d["RFC822.SIZE"]) == len(msg)
        assert d["RFC822.HEADER"] == b"Subject: r\r\n\r\n"
        assert d["RFC822.TEXT"] == b"body\r\n"
        assert c.fetch("1", "BODY.PEEK[]")[1]["BODY[]"] == msg


def test_preview_utf8_quoted_in_rev2(node):
    """RFC 9051 quoted strings may hold UTF-8 (QUOTED-CHAR), so a rev2
    session gets an 8-bit PREVIEW (RFC 8970) quoted, as with UTF8=ACCEPT;
    rev1 gets a literal."""
    msg = ("Subject: p\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           "Caf\u00e9 cr\u00e8me\r\n").encode()
    want = "Caf\u00e9 cr\u00e8me".encode()
    with session(node, rev2=True) as c:
        _, t = c.cmd_literal("APPEND INBOX", msg)
        assert t.startswith("OK"), t
        c.select("INBOX")
        assert c.ok("FETCH 1 (PREVIEW)") == [b'* 1 FETCH (PREVIEW "' + want + b'")']
    with session(node) as c:
        c.select("INBOX")
        assert c.ok("FETCH 1 (PREVIEW)") == \
            [b"* 1 FETCH (PREVIEW {%d}\r\n" % len(want) + want + b")"]


def test_rev2_keywords_are_plain_keywords(node):
    """RFC 9051 2.3.2 names $Forwarded, $MDNSent, $Junk, $NotJunk and
    $Phishing: keywords like any other, kept and announced in FLAGS and
    PERMANENTFLAGS allows them (\\*)."""
    kws = ["$Forwarded", "$MDNSent", "$Junk", "$NotJunk", "$Phishing"]
    with session(node, rev2=True) as c:
        append(c, "INBOX", 1)
        untagged = c.select("INBOX")
        assert [r for r in untagged if r.startswith(b"* OK [PERMANENTFLAGS (") and b"\\*)" in r]
        untagged = c.ok(f"STORE 1 +FLAGS ({' '.join(kws)})")
        assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft " + \
            " ".join(kws).encode() + b")" in untagged, untagged
        assert flags_of(c)[1] == set(kws)


def test_notify_preview_utf8_quoted_in_rev2(node):
    """NOTIFY's MessageNew FETCH (RFC 5465) writes PREVIEW as FETCH does:
    quoted UTF-8 for a rev2 session."""
    msg = ("Subject: p\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           "Caf\u00e9 cr\u00e8me\r\n").encode()
    want = "Caf\u00e9 cr\u00e8me".encode()
    with session(node, rev2=True) as c, session(node) as other:
        c.select("INBOX")
        c.ok("NOTIFY SET (SELECTED (MessageNew (UID PREVIEW) MessageExpunge))")
        _, t = other.cmd_literal("APPEND INBOX", msg)
        assert t.startswith("OK"), t
        got = []
        while not any(b" FETCH " in r for r in got):
            got.append(c.response())
        assert b'* 1 FETCH (UID 1 PREVIEW "' + want + b'")' in got, got


def test_status_deleted_storage(node):
    """RFC 9208: DELETED-STORAGE is what an EXPUNGE would free, in the
    STORAGE resource's unit (1024 octets, rounded up), also in LIST-STATUS
    and in rev1."""
    big = b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n"       # 3,018 octets
    with session(node) as c:
        c.ok("CREATE stor")
        assert status_of(c.ok("STATUS stor (DELETED-STORAGE)")) == {"DELETED-STORAGE": 0}
        for flags in ("(\\Deleted)", "(\\Deleted)", "()"):
            _, t = c.cmd_literal(f"APPEND stor {flags}", big)
            assert t.startswith("OK"), t
        assert status_of(c.ok("STATUS stor (DELETED DELETED-STORAGE)")) == \
            {"DELETED": 2, "DELETED-STORAGE": (2 * len(big) + 1023) // 1024}
        untagged = c.ok('LIST "" stor RETURN (STATUS (DELETED-STORAGE))')
        assert b"* STATUS stor (DELETED-STORAGE 6)" in untagged, untagged
        c.select("stor")
        c.ok("EXPUNGE")
        assert status_of(c.ok("STATUS stor (DELETED-STORAGE MESSAGES)")) == \
            {"DELETED-STORAGE": 0, "MESSAGES": 1}
