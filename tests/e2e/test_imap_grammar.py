"""The formal syntax of RFC 3501 section 9 (and RFC 9051 section 9 where it
differs), rule by rule: one end-to-end test for each rule that a parser can
get wrong, named after the rule, its docstring citing the ABNF. Each test
sends the exact bytes and checks the exact answer; a rejected command must
leave the session in step (the next command works)."""

import re

import pytest

from imap_helpers import Raw, fetch_dict, imap_node
from ternlib import PASSWORD

LINE_LIMIT = 4096


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd, max_line_length="4k", max_literal_size="2k",
                     max_message_size="64k", max_bad_commands=100)


@pytest.fixture
def c(node):
    with Raw(node).login() as client:
        yield client


def msg(subject, body="hello\r\n"):
    if isinstance(subject, str):
        subject = subject.encode()
    return (b"From: a@a.test\r\nTo: b@b.test\r\nSubject: " + subject +
            b"\r\n\r\n" + body.encode())


def append(c, subject, folder="INBOX", extra=""):
    data = msg(subject)
    _, t = c.cmd_literal(f"APPEND {folder}{extra}", data, plus=True)
    assert t.startswith("OK"), t


def flags_line(c, seq=1):
    lines = [r for r in c.ok(f"FETCH {seq} (FLAGS)") if re.match(rb"\* \d+ FETCH", r)]
    assert len(lines) == 1, lines
    m = re.search(rb"FLAGS \(([^)]*)\)", lines[0])
    assert m, lines[0]
    return [f for f in m.group(1).split() if f != b"\\Recent"]


def uids(c, what, uid=True):
    return sorted(int(d["UID"]) for d in c.fetch(what, "(UID)", uid=uid).values())


def bad(c, line):
    """line is refused with BAD and the session goes on."""
    _, t = c.cmd(line)
    assert t.startswith("BAD"), f"{line!r}: {t}"
    c.ok("NOOP")


def list_names(c, ref, pattern):
    out = []
    for r in c.ok(f"LIST {ref} {pattern}"):
        m = re.match(rb'\* LIST \([^)]*\) (?:NIL|"[^"]*") (.*)$', r)
        assert m, r
        name = m.group(1)
        out.append(name[1:-1].decode() if name.startswith(b'"') else name.decode())
    return sorted(out)


# ------------------------------------------------------------------ flags

def test_flag_keyword_nil_in_store(c):
    """flag-keyword = atom; store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"])
    SP (flag-list / (flag *(SP flag))): NIL is an atom like any other, so
    `STORE 1 +FLAGS NIL` sets the keyword NIL, and FETCH FLAGS shows it."""
    append(c, "nil")
    c.select()
    untagged = c.ok("STORE 1 +FLAGS NIL")
    assert any(b"NIL" in r for r in untagged if b" FETCH " in r), untagged
    assert b"NIL" in flags_line(c)
    c.ok("STORE 1 -FLAGS (NIL)")
    assert b"NIL" not in flags_line(c)
    c.ok("STORE 1 FLAGS (\\Seen nil)")
    assert sorted(flags_line(c)) == [b"\\Seen", b"nil"]


def test_flag_keyword_nil_in_append(c):
    """append = "APPEND" SP mailbox [SP flag-list] [SP date-time] SP literal;
    flag-list = "(" [flag *(SP flag)] ")": (NIL) is a list of one keyword."""
    append(c, "nil-append", extra=" (NIL $Forwarded)")
    c.select()
    assert sorted(flags_line(c)) == [b"$Forwarded", b"NIL"]


def test_search_key_keyword_nil(c):
    """search-key =/ "KEYWORD" SP flag-keyword / "UNKEYWORD" SP flag-keyword:
    KEYWORD NIL looks for the keyword NIL."""
    append(c, "one")
    append(c, "two")
    c.select()
    c.ok("STORE 2 +FLAGS.SILENT (NIL)")
    assert c.search("KEYWORD NIL") == [2]
    assert c.search("UNKEYWORD nil") == [1]


def test_flag_keyword_excludes_atom_specials(c):
    """flag-keyword = atom; atom = 1*ATOM-CHAR; ATOM-CHAR excludes
    atom-specials and resp-specials ("]"): `a]b` is no keyword."""
    append(c, "specials")
    c.select()
    bad(c, "STORE 1 +FLAGS (a]b)")
    bad(c, "STORE 1 +FLAGS (a%b)")
    assert flags_line(c) == []


def test_flag_list_empty_and_flag_perm(c):
    """flag-list = "(" [flag *(SP flag)] ")": () is the empty list, so
    `STORE 1 FLAGS ()` clears the flags; "\\*" is flag-perm, a response-only
    form, and no flag a client may store."""
    append(c, "empty", extra=" (\\Seen kw)")
    c.select()
    assert sorted(flags_line(c)) == [b"\\Seen", b"kw"]
    c.ok("STORE 1 FLAGS ()")
    assert flags_line(c) == []
    _, t = c.cmd("STORE 1 +FLAGS (\\*)")
    assert t.startswith("BAD") or t.startswith("NO"), t
    bad(c, "STORE 1 +FLAGS (kw")
    assert flags_line(c) == []


# ------------------------------------------------------------------ strings

def test_quoted_escapes(c):
    """quoted = DQUOTE *QUOTED-CHAR DQUOTE; QUOTED-CHAR =/ "\\" quoted-specials:
    \\" and \\\\ stand for " and \\."""
    append(c, b'say "hi" \\ there')
    append(c, b"other")
    c.select()
    assert c.search(r'SUBJECT "say \"hi\" \\ there"') == [1]
    assert c.search(r'SUBJECT "\\"') == [1]


def test_quoted_invalid_escape(c):
    """QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\\" quoted-specials:
    a backslash before anything but " or \\ is a syntax error."""
    append(c, "x")
    c.select()
    bad(c, r'SEARCH SUBJECT "a\qb"')
    bad(c, 'SEARCH SUBJECT "unterminated')


def test_quoted_8bit_utf8(c):
    """RFC 9051 / RFC 6855: QUOTED-CHAR =/ UTF8-2 / UTF8-3 / UTF8-4: UTF-8 in a
    quoted string is accepted where the charset allows it; bytes that are no
    UTF-8 are refused."""
    append(c, "café au lait".encode())
    append(c, "tea")
    c.select()
    untagged, t = c.cmd('SEARCH CHARSET UTF-8 SUBJECT "café"'.encode())
    assert t.startswith("OK"), t
    assert [r for r in untagged if r.startswith(b"* SEARCH")] == [b"* SEARCH 1"]
    _, t = c.cmd(b'SEARCH CHARSET UTF-8 SUBJECT "caf\xff"')
    assert t.startswith("BAD") or t.startswith("NO"), t
    c.ok("NOOP")


def test_literal_zero_length(c):
    """literal = "{" number64 ["+"] "}" CRLF *CHAR8: {0} is a literal with no
    bytes, the empty string (matches every message in SUBJECT)."""
    append(c, "a")
    append(c, "b")
    c.select()
    untagged, t = c.cmd_literal("SEARCH SUBJECT", b"")
    assert t.startswith("OK"), t
    assert [r for r in untagged if r.startswith(b"* SEARCH")] == [b"* SEARCH 1 2"]


def test_literal_non_synchronising(c, node):
    """RFC 7888: literal = "{" number64 ["+"] "}" CRLF *CHAR8: a {n+} literal
    needs no continuation; several on one command, any argument."""
    with Raw(node) as c2:
        pw = PASSWORD.encode()
        c2.send(b"L1 LOGIN {5+}\r\nalice {%d+}\r\n%s\r\n" % (len(pw), pw))
        _, t = c2.wait("L1")
        assert t.startswith("OK"), t


def test_literal_plus_larger_than_4096(c):
    """RFC 7888 section 3 (LITERAL+): a {n+} literal of any size within the
    server's limit is accepted, also one over LITERAL-'s 4096 bytes."""
    data = msg("big", body=("y" * 78 + "\r\n") * 100)
    assert 4096 < len(data) < 64 * 1024
    _, t = c.cmd_literal("APPEND INBOX", data, plus=True)
    assert t.startswith("OK"), t
    c.select()
    d = c.fetch("1", "(RFC822.SIZE)")[1]
    assert int(d["RFC822.SIZE"]) == len(data)


def test_literal_plus_over_limit_is_read_and_refused(c):
    """RFC 7888 section 4: a non-synchronising literal the server will not
    take is refused with a tagged answer carrying [TOOBIG]; the server reads
    and discards its bytes, and the connection goes on."""
    data = b"Subject: Smuggled\r\n\r\n" + b"z" * 5000 + b"\r\nX1 CREATE Smuggled\r\n"
    t = c.tag()
    c.send(t.encode() + b" SEARCH SUBJECT {%d+}\r\n" % len(data) + data + b"\r\n")
    untagged, reply = c.wait(t)
    assert "[TOOBIG]" in reply and (reply.startswith("BAD") or reply.startswith("NO")), reply
    c.ok("NOOP")
    assert "Smuggled" not in list_names(c, '""', "*")
    big = msg("huge", body="q" * (70 * 1024))
    untagged, reply = c.cmd_literal("APPEND INBOX", big, plus=True)
    assert "[TOOBIG]" in reply, reply
    c.ok("NOOP")


def test_literal_inside_list(c):
    """list elements are search-keys / astrings, and astring = 1*ASTRING-CHAR
    / string, string = quoted / literal: a literal may stand inside ( )."""
    append(c, "inside")
    append(c, "outside")
    c.select()
    t = c.tag()
    c.send(t.encode() + b" SEARCH (SUBJECT {6+}\r\ninside)\r\n")
    untagged, reply = c.wait(t)
    assert reply.startswith("OK"), reply
    assert [r for r in untagged if r.startswith(b"* SEARCH")] == [b"* SEARCH 1"]


def test_astring_allows_resp_specials(c):
    """astring = 1*ASTRING-CHAR / string; ASTRING-CHAR = ATOM-CHAR /
    resp-specials: "]" may stand in an unquoted mailbox name."""
    c.ok("CREATE a]b")
    assert "a]b" in list_names(c, '""', "*")
    c.ok('SELECT "a]b"')


def test_nil_is_a_mailbox_name(c):
    """mailbox = "INBOX" / astring: unquoted NIL is an astring there, a name."""
    c.ok("CREATE NIL")
    assert "NIL" in list_names(c, '""', "*")
    c.ok('STATUS "NIL" (MESSAGES)')


def test_atom_refuses_8bit_and_ctl(c):
    """ATOM-CHAR = <any CHAR except atom-specials>; CHAR = %x01-7F: 8-bit
    and control bytes in an atom are a syntax error."""
    c.select()
    bad(c, b"FETCH 1 FL\xc3\xa9GS")
    bad(c, b"FETCH 1 FL\x01AGS")


# ------------------------------------------------------------------ mailbox names

def test_list_wildcards(c):
    """list-mailbox = 1*list-char / string; list-wildcards = "%" / "*": "%"
    stops at the hierarchy delimiter, "*" does not."""
    for name in ("a", "a/b", "a/b/c"):
        c.ok(f"CREATE {name}")
    assert list_names(c, '""', "a/%") == ["a/b"]
    assert list_names(c, '""', "a/*") == ["a/b", "a/b/c"]
    top = list_names(c, '""', "%")
    assert "INBOX" in top and "a" in top and not [n for n in top if "/" in n], top
    assert list_names(c, '"a/"', "%") == ["a/b"]
    assert list_names(c, '""', '"a/%/c"') == ["a/b/c"]


def test_mailbox_inbox_case_insensitive(c):
    """mailbox = "INBOX" / astring; "INBOX" is case-insensitive: inbox and
    InBoX name the INBOX, which LIST spells INBOX."""
    append(c, "in")
    for spelling in ("inbox", "InBoX", '"iNbOx"'):
        untagged = c.ok(f"SELECT {spelling}")
        assert b"* 1 EXISTS" in untagged, (spelling, untagged)
        untagged = c.ok(f"STATUS {spelling} (MESSAGES)")
        assert any(b"(MESSAGES 1)" in r for r in untagged), untagged
    assert list_names(c, '""', "inbox") == ["INBOX"]
    _, t = c.cmd("CREATE inbox")
    assert t.startswith("NO"), t


# ------------------------------------------------------------------ sequence sets

def test_sequence_set_star_and_ranges(c):
    """sequence-set = (seq-number / seq-range) ["," sequence-set];
    seq-range = seq-number ":" seq-number; "*" is the largest number in use,
    and a range may be given in either order (2:4 = 4:2)."""
    for i in range(5):
        append(c, f"m{i}")
    c.select()
    assert sorted(c.fetch("*", "(UID)")) == [5]
    assert sorted(c.fetch("*:1", "(UID)")) == [1, 2, 3, 4, 5]
    assert sorted(c.fetch("1:*", "(UID)")) == [1, 2, 3, 4, 5]
    assert sorted(c.fetch("4:2", "(UID)")) == [2, 3, 4]
    assert sorted(c.fetch("1,3:*,2", "(UID)")) == [1, 2, 3, 4, 5]
    assert sorted(c.fetch("5:*", "(UID)")) == [5]


def test_sequence_set_refuses_zero_and_junk(c):
    """seq-number = nz-number / "*"; nz-number = digit-nz *DIGIT: 0, a sign,
    an empty member or a number over 2^32-1 is a syntax error."""
    append(c, "x")
    c.select()
    for s in ("0", "1:0", "-1", "1,,2", "1:", ":1", "4294967296", "1.5", "*:*:1"):
        bad(c, f"FETCH {s} (UID)")


def test_uid_range_past_the_last_uid(c):
    """seq-range: "*" is the largest UID in use, so with UIDs 1..3
    `UID FETCH 10:*` is 3:10 and returns the message with UID 3 (RFC 3501
    section 6.4.8), while `UID FETCH 10:20` returns nothing."""
    for i in range(3):
        append(c, f"u{i}")
    c.select()
    assert uids(c, "10:*") == [3]
    assert uids(c, "10:20") == []
    assert uids(c, "2:*") == [2, 3]
    assert uids(c, "*") == [3]


def test_sequence_set_dollar_searchres(c):
    """RFC 5182: sequence-set =/ seq-last-command; seq-last-command = "$": the
    result saved by SEARCH RETURN (SAVE)."""
    for s in ("keep", "drop", "keep"):
        append(c, s)
    c.select()
    c.ok("SEARCH RETURN (SAVE) SUBJECT keep")
    assert sorted(c.fetch("$", "(UID)")) == [1, 3]
    assert uids(c, "$") == [1, 3]
    bad(c, "FETCH $:2 (UID)")


# ------------------------------------------------------------------ dates

def test_date_time_day_with_leading_space(c):
    """date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time
    SP zone DQUOTE; date-day-fixed = (SP DIGIT) / 2DIGIT: " 1-Jan-2026" and
    "01-Jan-2026" are the same day (INTERNALDATE may be written either way)."""
    for date in (" 1-Jan-2026 10:00:00 +0000", "01-Jan-2026 10:00:00 +0000"):
        _, t = c.cmd_literal(f'APPEND INBOX () "{date}"', msg("dated"), plus=True)
        assert t.startswith("OK"), (date, t)
    c.select()
    got = [d["INTERNALDATE"] for d in c.fetch("1:*", "(INTERNALDATE)").values()]
    assert len(got) == 2 and got[0] == got[1], got
    assert got[0] in (b" 1-Jan-2026 10:00:00 +0000", b"01-Jan-2026 10:00:00 +0000"), got


def test_date_time_invalid(c):
    """date-time: month names, a four-digit year, hh:mm:ss and a signed
    four-digit zone are required; anything else is refused."""
    for date in ("32-Jan-2026 10:00:00 +0000", "01-Foo-2026 10:00:00 +0000",
                 "01-Jan-26 10:00:00 +0000", "01-Jan-2026 25:00:00 +0000",
                 "01-Jan-2026 10:00:00 0000", "01-Jan-2026 10:00 +0000"):
        _, t = c.cmd_literal(f'APPEND INBOX "{date}"', msg("bad"), plus=True)
        assert t.startswith("BAD"), (date, t)
        c.ok("NOOP")


def test_search_date(c):
    """search-key =/ "SINCE" SP date; date = date-text / DQUOTE date-text
    DQUOTE; date-day = 1*2DIGIT: 1-Jan-2026 and "01-Jan-2026" both parse."""
    _, t = c.cmd_literal('APPEND INBOX "01-Feb-2026 10:00:00 +0000"', msg("d"), plus=True)
    assert t.startswith("OK"), t
    c.select()
    assert c.search("SINCE 1-Jan-2026") == [1]
    assert c.search('BEFORE "01-Jan-2026"') == []
    bad(c, "SEARCH SINCE 1-January-2026")


# ------------------------------------------------------------------ search

def test_search_parenthesised_keys(c):
    """search-key =/ "(" search-key *(SP search-key) ")": lists nest and AND
    their members; OR takes two keys, each of which may be a list."""
    for s in ("alpha", "beta", "gamma"):
        append(c, s)
    c.select()
    c.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
    assert c.search("(OR SUBJECT alpha SUBJECT beta) (UNSEEN)") == [1]
    assert c.search("((SUBJECT gamma))") == [3]
    assert c.search("OR (SUBJECT alpha SEEN) (SUBJECT beta SEEN)") == [2]
    assert c.search("NOT (OR SUBJECT alpha SUBJECT beta)") == [3]
    bad(c, "SEARCH (SUBJECT alpha")
    bad(c, "SEARCH ()")


def test_search_charset(c):
    """search = "SEARCH" [SP "CHARSET" SP astring] 1*(SP search-key): a known
    charset is used, an unknown one gets NO [BADCHARSET]."""
    append(c, "plain")
    c.select()
    assert c.search("CHARSET UTF-8 SUBJECT plain") == [1]
    assert c.search('CHARSET "us-ascii" SUBJECT plain') == [1]
    _, t = c.cmd("SEARCH CHARSET X-NO-SUCH-CHARSET SUBJECT plain")
    assert t.startswith("NO [BADCHARSET"), t
    c.ok("NOOP")


# ------------------------------------------------------------------ command line

def test_tag_refuses_plus_and_list_specials(c):
    """tag = 1*<any ASTRING-CHAR except "+">: "+" and atom-specials are no
    tag characters; resp-specials "]" is one."""
    for raw in (b"a+b NOOP\r\n", b"a(b NOOP\r\n", b'a"b NOOP\r\n', b"a%b NOOP\r\n",
                b"a{b NOOP\r\n"):
        c.send(raw)
        r = c.response()
        assert re.match(rb"(\*|\S+) BAD", r), (raw, r)
        c.ok("NOOP")
    c.send(b"a]b NOOP\r\n")
    _, t = c.wait("a]b")
    assert t.startswith("OK"), t


def test_empty_command(c):
    """command = tag SP (...) CRLF: an empty line, or a tag with no command,
    is refused and the session goes on."""
    c.send(b"\r\n")
    assert re.match(rb"(\*|\S+) BAD", c.response())
    c.send(b"onlytag\r\n")
    assert re.match(rb"(\*|onlytag) BAD", c.response())
    c.send(b"t1  NOOP\r\n")
    assert re.match(rb"(\*|t1) BAD", c.response())
    c.ok("NOOP")


def test_command_too_long(c):
    """RFC 7162 section 4 / RFC 9051 section 4: a server may refuse a command
    line over its limit; it answers BAD and stays in step."""
    c.select()
    line = "SEARCH " + " ".join(["SUBJECT x"] * (LINE_LIMIT // 10 + 10))
    assert len(line) > LINE_LIMIT
    _, t = c.cmd(line)
    assert t.startswith("BAD"), t
    c.ok("NOOP")


def test_command_names_case_insensitive(c):
    """The ABNF's quoted strings are case-insensitive (RFC 5234 section 2.3):
    `fetch 1 (flags uid)` is FETCH 1 (FLAGS UID)."""
    append(c, "case")
    c.ok("select inbox")
    untagged = c.ok("fetch 1 (flags uid)")
    _, d = fetch_dict([r for r in untagged if b" FETCH " in r][0])
    assert d["UID"] == "1" and [f for f in d["FLAGS"] if f != "\\Recent"] == []
    c.ok("uid store 1 +flags.silent (\\seen)")
    assert flags_line(c) == [b"\\Seen"]


def test_number_refuses_overflow(c):
    """number = 1*DIGIT ; Unsigned 32-bit integer (0 <= n < 4,294,967,296):
    a partial origin or a UID past that is a syntax error."""
    append(c, "n")
    c.select()
    bad(c, "FETCH 1 (BODY[]<4294967296.1>)")
    bad(c, "UID FETCH 4294967296 (UID)")
    c.ok("FETCH 1 (BODY.PEEK[]<0.4>)")


# ------------------------------------------------------------------ more rules

def test_list_empty_pattern_gives_delimiter(c):
    """list = "LIST" SP mailbox SP list-mailbox; RFC 3501 section 6.3.8: an
    empty list-mailbox ("") asks for the hierarchy delimiter and the root."""
    untagged = c.ok('LIST "" ""')
    assert untagged == [b'* LIST (\\Noselect) "/" ""'], untagged


def test_mailbox_modified_utf7(c):
    """mailbox names are modified UTF-7 (RFC 3501 section 5.1.3): "&AOk-" is
    "é" and comes back spelled the same; "&" alone is "&-"; a broken shift
    sequence is refused."""
    c.ok("CREATE caf&AOk-")
    c.ok('CREATE "R&-D"')
    names = list_names(c, '""', "*")
    assert "caf&AOk-" in names and "R&-D" in names, names
    c.ok("SELECT caf&AOk-")
    _, t = c.cmd("CREATE bad&Jjo")
    assert t.startswith("NO") or t.startswith("BAD"), t
    c.ok("NOOP")


def test_section_spec(c):
    """section-spec = section-msgtext / (section-part ["." section-text]);
    section-part = nz-number *("." nz-number): BODY[1] and BODY[1.MIME] are
    valid, BODY[0] and BODY[1.0] are not."""
    append(c, "sections")
    c.select()
    d = c.fetch("1", "(BODY.PEEK[1] BODY.PEEK[TEXT] BODY.PEEK[HEADER.FIELDS.NOT (To From)])")[1]
    assert d["BODY[1]"] == b"hello\r\n" and d["BODY[TEXT]"] == b"hello\r\n", d
    assert d["BODY[HEADER.FIELDS.NOT (TO FROM)]"] == b"Subject: sections\r\n\r\n", d
    bad(c, "FETCH 1 (BODY.PEEK[0])")
    bad(c, "FETCH 1 (BODY.PEEK[1.0])")
    bad(c, "FETCH 1 (BODY.PEEK[HEADER.FIELDS])")


def test_partial(c):
    """RFC 3501: section "<" number "." nz-number ">": BODY[]<0.4> gives four
    bytes as BODY[]<0>; a zero length is no nz-number."""
    append(c, "partial")
    c.select()
    d = c.fetch("1", "(BODY.PEEK[]<0.4>)")[1]
    assert d["BODY[]<0>"] == b"From", d
    d = c.fetch("1", "(BODY.PEEK[TEXT]<2.100>)")[1]
    assert d["BODY[TEXT]<2>"] == b"llo\r\n", d
    bad(c, "FETCH 1 (BODY.PEEK[]<0.0>)")
    bad(c, "FETCH 1 (BODY.PEEK[]<.4>)")


def test_header_list_literal(c):
    """header-list = "(" header-fld-name *(SP header-fld-name) ")";
    header-fld-name = astring: a header name may be a quoted string or a
    literal."""
    append(c, "hdrlit")
    c.select()
    d = c.fetch("1", '(BODY.PEEK[HEADER.FIELDS ("Subject")])')[1]
    assert list(d.values()) == [b"Subject: hdrlit\r\n\r\n"], d
    t = c.tag()
    c.send(t.encode() + b" FETCH 1 (BODY.PEEK[HEADER.FIELDS ({7+}\r\nSubject)])\r\n")
    untagged, reply = c.wait(t)
    assert reply.startswith("OK"), reply
    _, d = fetch_dict([r for r in untagged if b" FETCH " in r][0])
    assert list(d.values()) == [b"Subject: hdrlit\r\n\r\n"], d


def test_fetch_macros(c):
    """fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att
    / "(" fetch-att *(SP fetch-att) ")"): the macros stand alone, never in a
    list."""
    append(c, "macro")
    c.select()
    d = c.fetch("1", "FAST")[1]
    assert set(d) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}, d
    d = c.fetch("1", "ALL")[1]
    assert set(d) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}, d
    d = c.fetch("1", "FULL")[1]
    assert set(d) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"}, d
    bad(c, "FETCH 1 (FAST)")


def test_search_sequence_set_key(c):
    """search-key =/ sequence-set / "UID" SP sequence-set: a bare set is a
    key, and UID takes one."""
    for s in ("a", "b", "c"):
        append(c, s)
    c.select()
    assert c.search("2:*") == [2, 3]
    assert c.search("UID 1,3") == [1, 3]
    assert c.search("*") == [3]
    assert c.search("1:2 UID 2:*") == [2]


def test_search_header_empty_string(c):
    """search-key =/ "HEADER" SP header-fld-name SP astring: an empty string
    matches every message that has the header (RFC 3501 section 6.4.4)."""
    append(c, "with")
    c.select()
    assert c.search('HEADER Subject ""') == [1]
    assert c.search('HEADER X-Not-There ""') == []


def test_search_number_overflow(c):
    """search-key =/ "LARGER" SP number; number is below 2^32 (RFC 3501;
    RFC 9051 widens LARGER/SMALLER to number64): a number that fits is a
    number, one past 64 bits or with a sign is BAD."""
    append(c, "n")
    c.select()
    assert c.search("LARGER 4294967295") == []
    assert c.search("SMALLER 4294967295") == [1]
    bad(c, "SEARCH LARGER 99999999999999999999")
    bad(c, "SEARCH LARGER -1")


def test_status_att_list(c):
    """status = "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")":
    an empty list or an unknown item is a syntax error."""
    bad(c, "STATUS INBOX ()")
    bad(c, "STATUS INBOX (MESSAGES FROB)")
    bad(c, "STATUS INBOX MESSAGES")
    c.ok("STATUS INBOX (messages uidnext)")


def test_literal_plus_over_preauth_limit(node):
    """RFC 7888 section 4: before login a literal may be a user name or a
    password only (at most max_literal_size, 2 KiB here, and never more than
    LITERAL-'s 4096 bytes): a {3000+} one is read, thrown away and refused
    with [TOOBIG]; the session goes on and can log in. One far past the
    limit ends the connection (test_hostile_imap.py)."""
    with Raw(node) as c:
        junk = b"y" * 2990 + b"\r\nX NOOP"
        c.send(b"L1 LOGIN {%d+}\r\n" % len(junk) + junk + b" pw\r\n")
        _, t = c.wait("L1")
        assert "[TOOBIG]" in t and (t.startswith("NO") or t.startswith("BAD")), t
        c.login()
        c.ok("NOOP")


def test_select_params_and_enable(c):
    """select = "SELECT" SP mailbox [select-params] (RFC 4466); enable =
    "ENABLE" 1*(SP capability): (CONDSTORE) is a select-param, ENABLE takes
    atoms and ignores ones it does not know, and needs at least one."""
    append(c, "p")
    untagged = c.ok("SELECT INBOX (CONDSTORE)")
    assert any(b"HIGHESTMODSEQ" in r for r in untagged), untagged
    c.ok("ENABLE X-UNKNOWN-THING")
    bad(c, "ENABLE")
    bad(c, "SELECT INBOX (CONDSTORE")


def test_id_nil_and_list(c):
    """id = "ID" SP id-params-list; id-params-list = "(" *(string SP nstring)
    ")" / nil (RFC 2971): NIL and a list of string pairs are taken; an odd
    list is BAD."""
    c.ok("ID NIL")
    c.ok('ID ("name" "grammar-test" "version" NIL)')
    bad(c, 'ID ("name")')


def test_uid_expunge_and_copy_sequence_sets(c):
    """uid-expunge = "UID EXPUNGE" SP sequence-set (RFC 4315); copy = "COPY" SP
    sequence-set SP mailbox: ranges, "*" and "$" work here as in FETCH."""
    for s in ("a", "b", "c", "d"):
        append(c, s)
    c.ok("CREATE Dest")
    c.select()
    c.ok("COPY 3:* Dest")
    c.ok("SEARCH RETURN (SAVE) SUBJECT a")
    c.ok("COPY $ Dest")
    untagged = c.ok("STATUS Dest (MESSAGES)")
    assert any(b"(MESSAGES 3)" in r for r in untagged), untagged
    c.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    untagged = c.ok("UID EXPUNGE 2:1")
    assert len([r for r in untagged if r.endswith(b" EXPUNGE")]) == 2, untagged
    assert c.search("ALL") == [1, 2]
    bad(c, "UID EXPUNGE")
