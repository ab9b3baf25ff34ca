"""Address fields end to end (RFC 5322 §3.4 as IMAP shows them): comments
inside an address, group syntax (empty groups too) and obsolete source
routes, read by one parser for ENVELOPE (RFC 3501 §7.4.2), SEARCH
FROM/TO/CC/BCC (RFC 3501 §6.4.4: the string is looked for in the envelope's
address structure) and SORT FROM/TO/CC (RFC 5256: the addr-mailbox of the
first address, a group's name for a group) and DISPLAYFROM/DISPLAYTO
(RFC 5957: the decoded display name, else the address). The messages of the
first two tests are those of imaptest's fetch-envelope and search-addresses
cases, byte for byte (LF made CRLF); the answers are the ones it expects."""

import pytest

from imap_helpers import Raw, imap_node


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def crlf(text):
    return text.replace("\n", "\r\n").encode()


def box(node, messages):
    """A session with messages APPENDed to INBOX, which is selected."""
    c = Raw(node).login()
    for m in messages:
        _, t = c.cmd_literal("APPEND INBOX", crlf(m))
        assert t.startswith("OK"), t
    c.select()
    return c


def search(c, criteria):
    untagged = c.ok(f"SEARCH {criteria}")
    lines = [r for r in untagged if r.startswith(b"* SEARCH")]
    assert len(lines) == 1, untagged
    return [int(x) for x in lines[0][len(b"* SEARCH"):].split()]


def sort(c, criteria):
    untagged = c.ok(f"SORT ({criteria}) UTF-8 ALL")
    lines = [r for r in untagged if r.startswith(b"* SORT")]
    assert len(lines) == 1, untagged
    return [int(x) for x in lines[0][len(b"* SORT"):].split()]


ENVELOPE_MESSAGES = [
    "Message-ID: <msg@id>\nIn-Reply-To: <reply@to.id>\nDate: Sat, 01 Feb 2007 01:02:03 +0200\n"
    "Subject: subject header\nFrom: From Real <fromuser@fromdomain.org>\n"
    "To: To Real <touser@todomain.org>\nCc: Cc Real <ccuser@ccdomain.org>\n"
    "Bcc: Bcc Real <bccuser@bccdomain.org>\nSender: Sender Real <senderuser@senderdomain.org>\n"
    "Reply-To: ReplyTo Real <replytouser@replytodomain.org>\n\nbody\n",
    "Date: Sat, 01 Feb 2007 01:02:03 +0200\nFrom: user@domain\n\nbody\n",
    "Date: Sat, 01 Feb 2007 01:02:03 +0200\nFrom: user@domain\n\nbody\n",
    "Date: Sat, 01 Feb 2007 01:02:03 +0200\nFrom: user@domain (Real Name)\n"
    "To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\n\nbody\n",
    "Date: Sat, 01 Feb 2007 01:02:03 +0200\nFrom: user@domain (Real Name)\nSender: \n"
    "Reply-To: \n\nbody\n",
    "Date: Sat, 01 Feb 2007 01:02:03 +0200\nFrom: <@route:user@domain>\n\nbody\n",
]

ENVELOPE_ANSWERS = [
    b'* 1 FETCH (ENVELOPE ("Sat, 01 Feb 2007 01:02:03 +0200" "subject header" '
    b'(("From Real" NIL "fromuser" "fromdomain.org")) (("Sender Real" NIL "senderuser" '
    b'"senderdomain.org")) (("ReplyTo Real" NIL "replytouser" "replytodomain.org")) '
    b'(("To Real" NIL "touser" "todomain.org")) (("Cc Real" NIL "ccuser" "ccdomain.org")) '
    b'(("Bcc Real" NIL "bccuser" "bccdomain.org")) "<reply@to.id>" "<msg@id>"))',
    b'* 2 FETCH (ENVELOPE ("Sat, 01 Feb 2007 01:02:03 +0200" NIL ((NIL NIL "user" "domain")) '
    b'((NIL NIL "user" "domain")) ((NIL NIL "user" "domain")) NIL NIL NIL NIL NIL))',
    b'* 3 FETCH (ENVELOPE ("Sat, 01 Feb 2007 01:02:03 +0200" NIL ((NIL NIL "user" "domain")) '
    b'((NIL NIL "user" "domain")) ((NIL NIL "user" "domain")) NIL NIL NIL NIL NIL))',
    b'* 4 FETCH (ENVELOPE ("Sat, 01 Feb 2007 01:02:03 +0200" NIL (("Real Name" NIL "user" '
    b'"domain")) (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) '
    b'((NIL NIL "group" NIL) (NIL NIL "g1" "d1.org") (NIL NIL "g2" "d2.org") (NIL NIL NIL NIL) '
    b'(NIL NIL "group2" NIL) (NIL NIL "g3" "d3.org") (NIL NIL NIL NIL)) NIL NIL NIL NIL))',
    b'* 5 FETCH (ENVELOPE ("Sat, 01 Feb 2007 01:02:03 +0200" NIL (("Real Name" NIL "user" '
    b'"domain")) (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) '
    b'NIL NIL NIL NIL NIL))',
    b'* 6 FETCH (ENVELOPE ("Sat, 01 Feb 2007 01:02:03 +0200" NIL ((NIL "@route" "user" '
    b'"domain")) ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) '
    b'NIL NIL NIL NIL NIL))',
]


def normalize(line):
    """IMAP allows either no or one space between list items: compare the
    text with ") (" and ")(" made the same."""
    return line.replace(b") (", b")(")


def test_envelope_groups_routes_comments(node):
    c = box(node, ENVELOPE_MESSAGES)
    untagged = c.ok("FETCH 1:* ENVELOPE")
    got = [normalize(r) for r in untagged if b" FETCH " in r]
    assert got == [normalize(a) for a in ENVELOPE_ANSWERS]
    c.close()


SEARCH_MESSAGES = [
    "From: user-from@domain.org\nTo: user-to@domain.org\nCc: user-cc@domain.org\n"
    "Bcc: user-bcc@domain.org\n\nbody\n",
    "From: RealFrom <user-from@domain.org>\nTo: RealTo <user-to@domain.org>\n"
    "Cc: RealCc <user-cc@domain.org>\nBcc: RealBcc <user-bcc@domain.org>\n\nbody2\n",
    "From: <user-from (comment)@ (comment) domain.org>\nTo: <user-to@domain.org>\n"
    "Cc: <user-cc@domain.org>\nBcc: <user-bcc@domain.org>\n\nbody3\n",
    "From: user-from@domain.org (RealFrom)\nTo: user-to@domain.org (RealTo)\n"
    "Cc: user-cc@domain.org (RealCc)\nBcc: user-bcc@domain.org (RealBcc)\n\nbody4\n",
    "From: user-from1@domain.org, user-from2@domain.org\nCc: user-cc@domain.org\n\nbody5\n",
    "To: groupname: groupuser1@domain.org, groupuser2@domain.org;,\n"
    "  groupname2: groupuser3@domain.org;\n\nbody5\n",
]

SEARCHES = [
    # full addresses; 3 has comments inside its From address
    ("FROM user-from@domain.org", [1, 2, 3, 4]),
    ("TO user-to@domain.org", [1, 2, 3, 4]),
    ("CC user-cc@domain.org", [1, 2, 3, 4, 5]),
    ("BCC user-bcc@domain.org", [1, 2, 3, 4]),
    # display names, also the comment after a bare address
    ("FROM realfrom", [2, 4]),
    ("TO realto", [2, 4]),
    ("CC realcc", [2, 4]),
    ("BCC realbcc", [2, 4]),
    # the fields exist
    ('HEADER FROM ""', [1, 2, 3, 4, 5]),
    ('HEADER TO ""', [1, 2, 3, 4, 6]),
    ('HEADER CC ""', [1, 2, 3, 4, 5]),
    ('HEADER BCC ""', [1, 2, 3, 4]),
    # substrings
    ("FROM ser-fro", [1, 2, 3, 4, 5]),
    ("TO ser-t", [1, 2, 3, 4]),
    ("CC ser-c", [1, 2, 3, 4, 5]),
    ("BCC ser-bc", [1, 2, 3, 4]),
    ("FROM ealfro", [2, 4]),
    ("TO ealt", [2, 4]),
    ("CC ealc", [2, 4]),
    ("BCC ealbc", [2, 4]),
    # several addresses
    ("FROM user-from1", [5]),
    ("FROM user-from2", [5]),
    # groups: their names and their members
    ("TO groupname", [6]),
    ("TO groupname2", [6]),
    ("TO groupuser1", [6]),
    ("TO groupuser2", [6]),
    ("TO groupuser3", [6]),
    ("TO groupuser4", []),
]


def test_search_addresses(node):
    c = box(node, SEARCH_MESSAGES)
    got = {criteria: search(c, criteria) for criteria, _ in SEARCHES}
    assert got == dict(SEARCHES)
    c.close()


def test_search_from_does_not_match_comments_inside_the_address(node):
    """SEARCH FROM looks in the envelope's address structure, where the
    comments inside <...> are no more; HEADER FROM still sees the text."""
    c = box(node, [SEARCH_MESSAGES[2]])
    assert search(c, "FROM comment") == []
    assert search(c, "HEADER FROM comment") == [1]
    assert search(c, 'FROM "user-from@domain.org"') == [1]
    assert search(c, "NOT FROM user-from@domain.org") == []
    c.close()


# The issue's cases, together: a group in Cc, an empty group in To, a source
# route in From, and an encoded display name. Keys, per message:
#   FROM  b-user / a-user / c-user           TO  c / empty (group) / d
#   CC    user2 (group) / user1 / user3      DISPLAYFROM  Zoë / a-user@d.org / Bob
#   DISPLAYTO  Zed / empty (group) / Able
SORT_MESSAGES = [
    "From: =?utf-8?q?Zo=C3=AB?= <b-user@d.org>\nTo: Zed <c@d.org>\n"
    "Cc: user2: blah@domain1.org;\nSubject: one\n\nbody\n",
    "From: a-user@d.org\nTo: empty:;\nCc: user1@domain.org\nSubject: two\n\nbody\n",
    "From: Bob <@route:c-user@d.org>\nTo: Able <d@d.org>\nCc: user3@domain.org\n"
    "Subject: three\n\nbody\n",
]


def test_envelope_of_the_issue_cases(node):
    c = box(node, SORT_MESSAGES)
    env = {}
    for r in c.ok("FETCH 1:3 ENVELOPE"):
        if b" FETCH " in r:
            env[int(r.split()[1])] = normalize(r)
    assert b'((NIL NIL "user2" NIL)(NIL NIL "blah" "domain1.org")(NIL NIL NIL NIL))' in env[1]
    assert b'(("=?utf-8?q?Zo=C3=AB?=" NIL "b-user" "d.org"))' in env[1]
    assert b'((NIL NIL "empty" NIL)(NIL NIL NIL NIL))' in env[2]
    assert b'(("Bob" "@route" "c-user" "d.org"))' in env[3]
    c.close()


def test_search_of_the_issue_cases(node):
    c = box(node, SORT_MESSAGES)
    assert search(c, "CC user2") == [1]
    assert search(c, "CC blah@domain1.org") == [1]
    assert search(c, "TO empty") == [2]
    assert search(c, "FROM c-user@d.org") == [3]
    # the decoded display name
    untagged, t = c.cmd_literal("SEARCH CHARSET UTF-8 FROM", "zo\u00eb".encode())
    assert t.startswith("OK"), t
    assert b"* SEARCH 1" in untagged, untagged
    c.close()


def test_sort_by_addresses_groups_count_by_name(node):
    c = box(node, SORT_MESSAGES)
    assert sort(c, "FROM") == [2, 1, 3]          # a-user b-user c-user
    assert sort(c, "TO") == [1, 3, 2]            # c d empty
    assert sort(c, "CC") == [2, 1, 3]            # user1 user2 user3
    assert sort(c, "REVERSE CC") == [3, 1, 2]
    assert sort(c, "DISPLAYFROM") == [2, 3, 1]   # a-user@d.org Bob Zoë
    assert sort(c, "DISPLAYTO") == [3, 2, 1]     # Able empty Zed
    assert sort(c, "REVERSE DISPLAYTO") == [1, 2, 3]
    c.close()


def test_hostile_address_fields_keep_the_session(node):
    """Odd address text never breaks ENVELOPE, SEARCH or SORT."""
    odd = [
        "From: (unterminated comment <a@b>\nTo: \"unterminated quote <c@d>\n\nx\n",
        "From: <<<@@@:::>>>\nTo: ;;;,,,:::\nCc: a: b: c@d;\n\nx\n",
        "From: " + "(" * 500 + "a@b\nTo: " + "g:" * 200 + "x@y\n\nx\n",
        "From: <@a,@b,@c:>\nTo: <>\nCc: @\n\nx\n",
    ]
    c = box(node, odd)
    untagged = c.ok("FETCH 1:* ENVELOPE")
    assert len([r for r in untagged if b" FETCH " in r]) == len(odd)
    search(c, "FROM a")
    search(c, "TO x")
    sort(c, "FROM")
    sort(c, "DISPLAYTO")
    c.ok("NOOP")
    c.close()
