"""CATENATE (RFC 4469): APPEND builds a message from literals (TEXT) and IMAP
URLs (RFC 5092) of messages or parts already stored, also in a MULTIAPPEND
and with literal8 TEXT parts; a URL part is exactly what FETCH BODY[section]
returns; every kind of bad URL gets NO [BADURL url]; too big gets
NO [TOOBIG]; bad syntax gets BAD and the connection goes on.

The RFC's examples are sent with their exact text; their UIDVALIDITY and
UIDs are replaced by the ones this server gave the original messages, and
the literal counts are the text's true length: the RFC's {738} and {541}
do not match their own text (721 and 540 bytes with CRLF line ends)."""

import re

import pytest

from imap_helpers import Raw, capabilities, fetch_dict, imap_node, status_of

B = "--------------030308070208000400050907"

# The original message of the RFC's examples 1 and 2 (UID 20): multipart/
# mixed with a text/plain and an application/x-zip-compressed part.
PART1_MIME = ("Content-Type: text/plain; charset=us-ascii; format=flowed\r\n"
              "Content-Transfer-Encoding: 7bit\r\n\r\n")
PART1 = "Our travel agent has sent the schedule.\r\n\r\nCheers,\r\nBob"
PART2_MIME = ("Content-Type: application/x-zip-compressed; name=\"schedule.zip\"\r\n"
              "Content-Transfer-Encoding: base64\r\n"
              "Content-Disposition: attachment; filename=\"schedule.zip\"\r\n\r\n")
PART2 = "UEsDBBQAAAAIAAAAIQAAAAAAAAAAAAAAAAAMAAAAc2NoZWR1bGUudHh0\r\nAAAA"
HEADER = ("From: Bob Ar <bar@example.org>\r\nTo: foo@example.net\r\n"
          "Subject: About our holiday trip\r\nMIME-Version: 1.0\r\n"
          f"Content-Type: multipart/mixed;\r\n              boundary=\"{B[2:]}\"\r\n\r\n")
ORIGINAL = (HEADER + f"{B}\r\n" + PART1_MIME + PART1 +
            f"\r\n{B}\r\n" + PART2_MIME + PART2 + f"\r\n{B}--\r\n").encode()
UID30 = b"From: a@example.org\r\nSubject: forwarded\r\n\r\nThe whole message.\r\n"

EX2_TEXT = """Return-Path: <bar@example.org>
Received: from [127.0.0.2]
          by rufus.example.org via TCP (internal) with ESMTPA;
          Thu, 11 Nov 2004 16:57:07 +0000
Message-ID: <419399E1.6000505@example.org>
Date: Thu, 12 Nov 2004 16:57:05 +0000
From: Bob Ar <bar@example.org>
X-Accept-Language: en-us, en
MIME-Version: 1.0
To: foo@example.net
Subject: About our holiday trip
Content-Type: multipart/mixed;
              boundary="------------030308070208000400050907"

--------------030308070208000400050907
Content-Type: text/plain; charset=us-ascii; format=flowed
Content-Transfer-Encoding: 7bit

Our travel agent has sent the updated schedule.

Cheers,
Bob
--------------030308070208000400050907
""".replace("\n", "\r\n").encode()

EX4_TEXT = """Return-Path: <foo@example.org>
Received: from [127.0.0.2]
          by rufus.example.org via TCP (internal) with ESMTPA;
          Thu, 11 Nov 2004 16:57:07 +0000
Message-ID: <419399E1.6000505@example.org>
Date: Thu, 21 Nov 2004 16:57:05 +0000
From: Farren Oo <foo@example.org>
X-Accept-Language: en-us, en
MIME-Version: 1.0
To: bar@example.org
Subject: Digest of the mailing list for today
Content-Type: multipart/digest;
              boundary="------------030308070208000400050904"

--------------030308070208000400050904
""".replace("\n", "\r\n").encode()

SEP42 = f"\r\n{B}\r\n".encode()
END44 = f"\r\n{B}--\r\n".encode()


class Lit:
    """A literal in a command: {n} (synchronising unless plus), or ~{n}."""

    def __init__(self, data, lit8=False, plus=False):
        self.data = data.encode() if isinstance(data, str) else data
        self.lit8 = lit8
        self.plus = plus


def run(c, *pieces):
    """Sends '<tag> ' and the pieces (bytes/str, or Lit); waits for '+' after
    each synchronising literal's header. Returns (untagged, tagged text); a
    tagged reply instead of '+' ends the command early."""
    t = c.tag()
    buf = t.encode() + b" "
    for p in pieces:
        if not isinstance(p, Lit):
            buf += p.encode() if isinstance(p, str) else p
            continue
        buf += (b"~" if p.lit8 else b"") + b"{%d%s}\r\n" % (len(p.data), b"+" if p.plus else b"")
        if not p.plus:
            c.send(buf)
            buf = b""
            r = c.response()
            if not r.startswith(b"+"):
                assert r.startswith(t.encode() + b" "), r
                return [], r[len(t) + 1:].decode(errors="replace")
        buf += p.data
    c.send(buf + b"\r\n")
    return c.wait(t)


def status(c, box):
    return status_of(c.ok(f"STATUS {box} (MESSAGES UIDNEXT UIDVALIDITY)"))


def append(c, box, data, flags=""):
    _, r = run(c, f"APPEND {box} {flags}", Lit(data, plus=True))
    m = re.match(r"OK \[APPENDUID (\d+) (\d+)\]", r)
    assert m, r
    return int(m.group(1)), int(m.group(2))


def body(c, box, uid, section=""):
    """FETCH BODY.PEEK[section] of one UID in box (selects box)."""
    c.ok(f"SELECT {box}")
    untagged = c.ok(f"UID FETCH {uid} (BODY.PEEK[{section}])")
    lines = [r for r in untagged if b" FETCH " in r]
    assert len(lines) == 1, untagged
    _, d = fetch_dict(lines[0])
    return d[f"BODY[{section}]"]


def flags(c, box, uid):
    c.ok(f"SELECT {box}")
    untagged = c.ok(f"UID FETCH {uid} (FLAGS)")
    return [r for r in untagged if b" FETCH " in r][0]


@pytest.fixture
def client(make_ternd):
    node = imap_node(make_ternd, max_bad_commands=100)
    c = Raw(node).login()
    yield c
    c.close()


@pytest.fixture
def drafts(client):
    """Drafts with the RFC's original message and a second one (its UID 20
    and 30): (client, uidvalidity, uid20, uid30)."""
    c = client
    v, u20 = append(c, "Drafts", ORIGINAL)
    v2, u30 = append(c, "Drafts", UID30)
    assert v == v2
    return c, v, u20, u30


def url(v, uid, rest=""):
    return f"/Drafts;UIDVALIDITY={v}/;UID={uid}{rest}"


def test_capability_catenate(client):
    assert "CATENATE" in capabilities(client.ok("CAPABILITY"))


def test_sections_are_what_fetch_returns(drafts):
    """The test's own expectations of the original's parts hold, so the
    comparisons below are not only the server against itself."""
    c, v, u20, _ = drafts
    assert body(c, "Drafts", u20, "2.MIME") == PART2_MIME.encode()
    assert body(c, "Drafts", u20, "2") == PART2.encode()
    assert body(c, "Drafts", u20, "1.MIME") == PART1_MIME.encode()
    assert body(c, "Drafts", u20, "1") == PART1.encode()
    assert body(c, "Drafts", u20, "HEADER") == HEADER.encode()


def test_rfc4469_example1(drafts):
    """Example 1: replace an attachment. The RFC's lines without "C: " are
    its rendering of one long line: they are joined with a space."""
    c, v, u20, u30 = drafts
    untagged, r = run(
        c, "APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE"
           f" (URL \"/Drafts;UIDVALIDITY={v}/;UID={u20}/;section=HEADER\""
           " TEXT ", Lit(SEP42),
        f" URL \"/Drafts;UIDVALIDITY={v}/;UID={u20}/;section=1.MIME\""
        f" URL \"/Drafts;UIDVALIDITY={v}/;UID={u20}/;section=1\" TEXT ", Lit(SEP42),
        f" URL \"/Drafts;UIDVALIDITY={v}/;UID={u30}\" TEXT ", Lit(END44), ")")
    m = re.match(r"OK \[APPENDUID (\d+) (\d+)\]", r)
    assert m, r
    assert int(m.group(1)) == v
    new = int(m.group(2))
    expected = (HEADER.encode() + SEP42 + PART1_MIME.encode() + PART1.encode() + SEP42 +
                UID30 + END44)
    assert body(c, "Drafts", new) == expected
    f = flags(c, "Drafts", new)
    assert b"\\Seen" in f and b"\\Draft" in f and b"$MDNSent" in f, f
    # RFC 4469 §3: the catenated parts' \Seen is not set
    assert b"\\Seen" not in flags(c, "Drafts", u20)
    assert b"\\Seen" not in flags(c, "Drafts", u30)


def test_rfc4469_example2(drafts):
    """Example 2: new text and header, the old attachment; APPENDUID; then
    the old draft is marked \\Deleted."""
    c, v, u20, _ = drafts
    before = status(c, "Drafts")
    untagged, r = run(
        c, "APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (TEXT ", Lit(EX2_TEXT),
        f" URL \"/Drafts;UIDVALIDITY={v}/;UID={u20}/;Section=2.MIME\""
        f" URL \"/Drafts;UIDVALIDITY={v}/;UID={u20}/;Section=2\" TEXT ", Lit(END44), ")")
    m = re.match(r"OK \[APPENDUID (\d+) (\d+)\]", r)
    assert m, r
    assert int(m.group(1)) == v and int(m.group(2)) == before["UIDNEXT"]
    new = int(m.group(2))
    assert body(c, "Drafts", new) == EX2_TEXT + PART2_MIME.encode() + PART2.encode() + END44
    # RFC822 of the new message is the same bytes
    untagged = c.ok(f"UID FETCH {new} (RFC822)")
    _, d = fetch_dict([x for x in untagged if b" FETCH " in x][0])
    assert d["RFC822"] == EX2_TEXT + PART2_MIME.encode() + PART2.encode() + END44
    c.ok(f"UID STORE {u20} +FLAGS.SILENT (\\Deleted)")
    assert status(c, "Drafts")["MESSAGES"] == before["MESSAGES"] + 1


def test_rfc4469_example4_badurl(client):
    """Example 4: a digest whose second URL names no message: NO [BADURL
    that URL] and nothing stored. url-resp-text (RFC 4469 §5) is the URL
    itself, without the quotes the example's rendering shows."""
    c = client
    digest = [f"From: list@example.org\r\nSubject: post {i}\r\n\r\nPost {i}.\r\n".encode()
              for i in range(2)]
    v, u1 = append(c, "INBOX", digest[0])
    _, u2 = append(c, "INBOX", digest[1])
    missing = u2 + 1000
    sep = b"\r\n--------------030308070208000400050904\r\n"
    end = b"\r\n--------------030308070208000400050904--\r\n"
    bad = f"/INBOX;UIDVALIDITY={v}/;UID={missing}/;section=1.5.9"
    _, r = run(c, "APPEND Sent (\\Seen $MDNSent) CATENATE (TEXT ", Lit(EX4_TEXT),
               f" URL \"/INBOX;UIDVALIDITY={v}/;UID={u1}\" TEXT ", Lit(sep),
               f" URL \"{bad}\" TEXT ", Lit(sep),
               f" URL \"/INBOX;UIDVALIDITY={v}/;UID={u2}\" TEXT ", Lit(end), ")")
    assert r.startswith(f"NO [BADURL {bad}] "), r
    assert status(c, "Sent")["MESSAGES"] == 0
    # the same digest with the good URLs only is stored
    _, r = run(c, "APPEND Sent (\\Seen $MDNSent) CATENATE (TEXT ", Lit(EX4_TEXT),
               f" URL \"/INBOX;UIDVALIDITY={v}/;UID={u1}\" TEXT ", Lit(sep),
               f" URL \"/INBOX;UIDVALIDITY={v}/;UID={u2}\" TEXT ", Lit(end), ")")
    assert r.startswith("OK [APPENDUID "), r
    uid = int(re.match(r"OK \[APPENDUID \d+ (\d+)\]", r).group(1))
    assert body(c, "Sent", uid) == EX4_TEXT + digest[0] + sep + digest[1] + end


def badurl(c, u, folder="Drafts"):
    _, r = run(c, f"APPEND {folder} CATENATE (TEXT ", Lit("Subject: x\r\n\r\n", plus=True),
               f" URL \"{u}\")")
    return r


@pytest.mark.parametrize("kind,make", [
    ("syntax", lambda v, u: "Drafts/;UID=1"),
    ("not imap", lambda v, u: f"http://localhost/Drafts;UIDVALIDITY={v}/;UID={u}"),
    ("absolute", lambda v, u: f"imap://alice@localhost/Drafts;UIDVALIDITY={v}/;UID={u}"),
    ("uidvalidity", lambda v, u: f"/Drafts;UIDVALIDITY={v + 1}/;UID={u}"),
    ("missing uid", lambda v, u: f"/Drafts;UIDVALIDITY={v}/;UID={u + 100}"),
    ("no uid", lambda v, u: f"/Drafts;UIDVALIDITY={v}"),
    ("missing mailbox", lambda v, u: f"/Nowhere;UIDVALIDITY={v}/;UID={u}"),
    ("other user", lambda v, u: f"imap://bob@localhost/INBOX/;UID={u}"),
    ("section not found", lambda v, u: f"/Drafts;UIDVALIDITY={v}/;UID={u}/;SECTION=7"),
    ("section not found deep", lambda v, u: f"/Drafts;UIDVALIDITY={v}/;UID={u}/;SECTION=2.3.MIME"),
    ("invalid section", lambda v, u: f"/Drafts;UIDVALIDITY={v}/;UID={u}/;SECTION=FOO"),
    ("unencoded space", lambda v, u: f"/Drafts;UIDVALIDITY={v}/;UID={u}/;SECTION=HEADER.FIELDS (To)"),
    ("bad percent", lambda v, u: f"/Dra%2xfts;UIDVALIDITY={v}/;UID={u}"),
    ("relative unselected", lambda v, u: f";UID={u}"),
    ("urlauth", lambda v, u: f"/Drafts;UIDVALIDITY={v}/;UID={u};URLAUTH=anonymous"),
    ("message list", lambda v, u: "/Drafts?SUBJECT%20x"),
])
def test_badurl(drafts, kind, make):
    c, v, u20, _ = drafts
    before = status(c, "Drafts")["MESSAGES"]
    u = make(v, u20)
    r = badurl(c, u)
    assert r.startswith(f"NO [BADURL {u}] "), (kind, r)
    assert status(c, "Drafts")["MESSAGES"] == before
    c.ok("NOOP")


def test_badurl_text_escaped(drafts):
    """A URL holding "]" is shown percent-encoded: url-resp-text has no "]"."""
    c, v, u20, _ = drafts
    r = badurl(c, f"/Drafts]x;UIDVALIDITY={v}/;UID={u20}")
    assert r.startswith(f"NO [BADURL /Drafts%5Dx;UIDVALIDITY={v}/;UID={u20}] "), r


def test_url_forms(drafts):
    """Without UIDVALIDITY; INBOX in any case; a percent-encoded UTF-8 name
    (RFC 5092 §3.2); HEADER.FIELDS with encoded spaces; PARTIAL; a URL
    relative to the selected mailbox (RFC 4469 §3's base URL)."""
    c, v, u20, u30 = drafts
    iv, iu = append(c, "INBOX", UID30)
    c.ok("CREATE Gr&APwA3w-e")
    gv, gu = append(c, "Gr&APwA3w-e", ORIGINAL)
    c.ok("SELECT Drafts")
    _, r = run(c, "APPEND Drafts CATENATE (",
               f"URL \"/Drafts/;UID={u20}/;SECTION=HEADER.FIELDS%20(Subject%20To)\" ",
               f"URL \"/inbox;UIDVALIDITY={iv}/;UID={iu}/;PARTIAL=0.4\" ",
               f"URL \"/Gr%C3%BC%C3%9Fe;UIDVALIDITY={gv}/;UID={gu}/;SECTION=1/;PARTIAL=4\" ",
               f"URL \";UID={u30}/;SECTION=TEXT\")")
    assert r.startswith("OK [APPENDUID "), r
    uid = int(re.match(r"OK \[APPENDUID \d+ (\d+)\]", r).group(1))
    expected = (b"To: foo@example.net\r\nSubject: About our holiday trip\r\n\r\n" +
                UID30[:4] + PART1.encode()[4:] + b"The whole message.\r\n")
    assert body(c, "Drafts", uid) == expected


def test_multiappend_with_catenate(drafts):
    """RFC 3502 + RFC 4469: a CATENATE message, a plain one and another
    CATENATE one in one APPEND; APPENDUID names all three in order."""
    c, v, u20, u30 = drafts
    before = status(c, "Drafts")
    plain = b"Subject: plain\r\n\r\nplain\r\n"
    _, r = run(c, "APPEND Drafts (\\Seen) CATENATE (TEXT ", Lit("Subject: one\r\n\r\n", plus=True),
               f" URL \"{url(v, u30, '/;SECTION=TEXT')}\") ",
               Lit(plain, plus=True),
               f" (\\Flagged) CATENATE (URL \"{url(v, u20)}\")")
    m = re.match(r"OK \[APPENDUID (\d+) (\d+):(\d+)\]", r)
    assert m, r
    first, last = int(m.group(2)), int(m.group(3))
    assert first == before["UIDNEXT"] and last == first + 2
    assert body(c, "Drafts", first) == b"Subject: one\r\n\r\nThe whole message.\r\n"
    assert body(c, "Drafts", first + 1) == plain
    assert body(c, "Drafts", last) == ORIGINAL
    assert b"\\Flagged" in flags(c, "Drafts", last)


def test_multiappend_url_to_message_of_same_command(drafts):
    """A URL naming the UID an earlier message of the same MULTIAPPEND
    would get: nothing is stored before every URL is resolved (RFC 3502 is
    all or nothing), so no such message exists yet: BADURL, none stored."""
    c, v, _, _ = drafts
    before = status(c, "Drafts")
    future = url(v, before["UIDNEXT"])
    _, r = run(c, "APPEND Drafts ", Lit(b"Subject: first\r\n\r\nx\r\n", plus=True),
               f" CATENATE (URL \"{future}\")")
    assert r.startswith(f"NO [BADURL {future}] "), r
    after = status(c, "Drafts")
    assert after["MESSAGES"] == before["MESSAGES"]
    assert after["UIDNEXT"] == before["UIDNEXT"]


def test_literal8_text(drafts):
    """RFC 3516 with RFC 4469: a TEXT part may be a literal8 (~{n}) and hold
    NULs; in a plain literal a NUL is refused with BAD."""
    c, v, u20, _ = drafts
    blob = bytes(range(1, 256)).replace(b"\r", b"").replace(b"\n", b"") + b"\0\0"
    head = b"Subject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    _, r = run(c, "APPEND Drafts CATENATE (TEXT ", Lit(head), " TEXT ", Lit(blob, lit8=True),
               " TEXT ", Lit(b"\r\n"), ")")
    assert r.startswith("OK [APPENDUID "), r
    uid = int(re.match(r"OK \[APPENDUID \d+ (\d+)\]", r).group(1))
    c.ok("SELECT Drafts")
    untagged = c.ok(f"UID FETCH {uid} (BINARY.PEEK[])")
    _, d = fetch_dict([x for x in untagged if b" FETCH " in x][0])
    assert d["BINARY[]"] == head + blob + b"\r\n"
    # RFC 6855's UTF8 (~{n}) is a cat-part too
    _, r = run(c, "APPEND Drafts CATENATE (UTF8 (", Lit("Subject: Grüße\r\n\r\n".encode(), lit8=True),
               f") URL \"{url(v, u20, '/;SECTION=1')}\")")
    assert r.startswith("OK [APPENDUID "), r
    # NUL in a plain TEXT literal
    _, r = run(c, "APPEND Drafts CATENATE (TEXT ", Lit(head + b"\0\r\n", plus=True), ")")
    assert r.startswith("BAD"), r
    c.ok("NOOP")


def test_toobig(make_ternd):
    """RFC 4469 §4.2: a result over the server's limit (APPENDLIMIT) gets
    NO [TOOBIG], also when only the MULTIAPPEND's messages together are
    over it; nothing is stored."""
    node = imap_node(make_ternd, max_message_size="8K")
    c = Raw(node).login()
    big = b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n"
    v, u = append(c, "INBOX", big)
    u1 = f"/INBOX;UIDVALIDITY={v}/;UID={u}"
    _, r = run(c, f"APPEND INBOX CATENATE (URL \"{u1}\" URL \"{u1}\")")
    assert r.startswith("OK [APPENDUID"), r                  # 6 KB fits
    _, r = run(c, f"APPEND INBOX CATENATE (URL \"{u1}\" URL \"{u1}\" URL \"{u1}\")")
    assert r.startswith("NO [TOOBIG]"), r
    _, r = run(c, f"APPEND INBOX CATENATE (URL \"{u1}\" URL \"{u1}\")"
               f" CATENATE (URL \"{u1}\")")
    assert r.startswith("NO [TOOBIG]"), r
    _, r = run(c, "APPEND INBOX CATENATE (TEXT ", Lit(b"x" * 4000, plus=True),
               f" URL \"{u1}\" URL \"{u1}\")")
    assert r.startswith("NO [TOOBIG]"), r
    # a TEXT literal over the limit is refused before its bytes are sent
    _, r = run(c, "APPEND INBOX CATENATE (TEXT ", Lit(b"y" * 9000), ")")
    assert r.startswith("NO [TOOBIG]"), r
    assert status(c, "INBOX")["MESSAGES"] == 2
    c.ok("NOOP")
    c.close()


def test_bad_syntax(drafts):
    """Malformed CATENATE arguments get BAD, and the session goes on."""
    c, v, u20, _ = drafts
    good = url(v, u20)
    for args in ["CATENATE ()", "CATENATE", "CATENATE TEXT", 'CATENATE (TEXT "quoted")',
                 "CATENATE (URL)", f'CATENATE (URL "{good}" TEXT)', "CATENATE (FOO bar)",
                 'CATENATE (URL "")', f'CATENATE URL "{good}"', f'CATENATE (URL ("{good}"))',
                 f'CATENATE (UTF8 "{good}")']:
        _, r = run(c, f"APPEND Drafts {args}")
        assert r.startswith("BAD"), (args, r)
    _, r = run(c, "APPEND Drafts CATENATE (URL \"/" + "a" * 3000 + "/;UID=1\")")
    assert r.startswith("BAD"), r
    c.ok("NOOP")


def test_empty_result(drafts):
    """A zero-length message is refused, whatever its parts."""
    c, v, u20, _ = drafts
    before = status(c, "Drafts")["MESSAGES"]
    _, r = run(c, "APPEND Drafts CATENATE (TEXT ", Lit(b""), ")")
    assert r.startswith("NO"), r
    _, r = run(c, f"APPEND Drafts CATENATE (URL \"{url(v, u20, '/;PARTIAL=100000.10')}\")")
    assert r.startswith("NO") and "BADURL" not in r, r
    assert status(c, "Drafts")["MESSAGES"] == before


def test_too_many_urls(drafts):
    c, v, u20, _ = drafts
    parts = " ".join(f"URL \"{url(v, u20, '/;SECTION=1')}\"" for _ in range(65))
    _, r = run(c, f"APPEND Drafts CATENATE ({parts})")
    assert r.startswith("NO [LIMIT]"), r
    c.ok("NOOP")


def test_target_missing(drafts):
    c, v, u20, _ = drafts
    _, r = run(c, f"APPEND Nowhere CATENATE (URL \"{url(v, u20)}\")")
    assert r.startswith("NO [TRYCREATE]"), r
