"""FETCH (RFC 3501 6.4.5 / 7.4.2) end to end on a nested MIME message delivered
over LMTP: every data item, the macros, every section form (HEADER,
HEADER.FIELDS[.NOT], TEXT, MIME, nested part numbers, message/rfc822 parts),
partial fetches, ENVELOPE and BODYSTRUCTURE, and which fetches set \\Seen.
The expected bytes are cut from the stored message (ternctl mailbox cat)."""

import re

import pytest

from imap_helpers import Raw, deliver, deliver_many, imap_node

NESTED = (
    b'From: "Ann Example" <ann@example.com>\r\n'
    b"To: Bob <bob@example.org>, carol@example.org\r\n"
    b"Cc: =?UTF-8?B?SsO8cmdlbg==?= <juergen@example.de>\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= nested\r\n"
    b"Date: Tue, 02 Jan 2024 10:00:00 +0100\r\n"
    b"Message-ID: <nested@tests.tern>\r\n"
    b"In-Reply-To: <parent@tests.tern>\r\n"
    b"X-Repeated: one\r\n"
    b"X-Repeated: two\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Hello caf=C3=A9 plain part\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"alt plain\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=us-ascii\r\n"
    b"\r\n"
    b"<p>alt html</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: inner@example.com\r\n"
    b"Subject: attached message\r\n"
    b"Date: Wed, 03 Jan 2024 11:00:00 +0000\r\n"
    b"\r\n"
    b"attached body\r\n"
    b"--outer\r\n"
    b'Content-Type: application/octet-stream; name="data.bin"\r\n'
    b'Content-Disposition: attachment; filename="data.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"c2VjcmV0IGJhc2U2NCB3b3Jk\r\n"
    b"--outer--\r\n"
)

# Section contents per RFC 3501 6.4.5 (the CRLF before a boundary belongs to it).
PARTS = {
    "1": b"Hello caf=C3=A9 plain part",
    "1.MIME": b"Content-Type: text/plain; charset=utf-8\r\n"
              b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
    "2": b"--inner\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nalt plain\r\n"
         b"--inner\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<p>alt html</p>\r\n--inner--",
    "2.MIME": b'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n',
    "2.1": b"alt plain",
    "2.2": b"<p>alt html</p>",
    "2.2.MIME": b"Content-Type: text/html; charset=us-ascii\r\n\r\n",
    "3": b"From: inner@example.com\r\nSubject: attached message\r\n"
         b"Date: Wed, 03 Jan 2024 11:00:00 +0000\r\n\r\nattached body",
    "3.HEADER": b"From: inner@example.com\r\nSubject: attached message\r\n"
                b"Date: Wed, 03 Jan 2024 11:00:00 +0000\r\n\r\n",
    "3.TEXT": b"attached body",
    "3.1": b"attached body",
    "3.HEADER.FIELDS (SUBJECT)": b"Subject: attached message\r\n\r\n",
    "4": b"c2VjcmV0IGJhc2U2NCB3b3Jk",
}


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


@pytest.fixture
def nested(node):
    """(session with INBOX selected, stored raw of the nested message = seq 1)."""
    deliver(node, raw=NESTED)
    raw = node.cat("alice", "INBOX", node.messages("alice")[0]["uid"])
    assert raw.endswith(NESTED), "LMTP may only prepend trace headers"
    c = Raw(node).login()
    c.select()
    yield c, raw
    c.close()


def section(d, prefix):
    """The value of the one key in d that starts with prefix (case-insensitive)."""
    keys = [k for k in d if k.upper().startswith(prefix.upper())]
    assert len(keys) == 1, f"expected one {prefix}... item in {list(d)}"
    return d[keys[0]]


def flags_of(c, seq=1):
    return {str(f) for f in c.fetch(str(seq), "FLAGS")[seq]["FLAGS"]} - {"\\Recent"}


def split(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", body


def test_whole_message_items(nested):
    c, raw = nested
    header, text = split(raw)
    d = c.fetch("1", "(RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] UID INTERNALDATE)")[1]
    assert int(d["RFC822.SIZE"]) == len(raw)
    assert d["BODY[]"] == raw
    assert d["BODY[HEADER]"] == header
    assert d["BODY[TEXT]"] == text
    assert int(d["UID"]) == 1
    assert re.fullmatch(rb"[ 0-3]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}", d["INTERNALDATE"]), d
    assert flags_of(c) == set(), "BODY.PEEK must not set \\Seen"
    d = c.fetch("1", "RFC822.HEADER")[1]
    assert d["RFC822.HEADER"] == header
    assert flags_of(c) == set(), "RFC822.HEADER must not set \\Seen"
    d = c.fetch("1", "RFC822.TEXT")[1]
    assert d["RFC822.TEXT"] == text
    assert flags_of(c) == {"\\Seen"}, "RFC822.TEXT sets \\Seen"


def test_rfc822_and_body_set_seen(node):
    deliver(node)
    deliver(node)
    with Raw(node).login() as c:
        c.select()
        d = c.fetch("1", "RFC822")[1]
        assert d["RFC822"] == node.cat("alice", "INBOX", 1)
        assert flags_of(c, 1) == {"\\Seen"}
        untagged = c.ok("FETCH 2 BODY[HEADER.FIELDS (Subject)]")
        assert flags_of(c, 2) == {"\\Seen"}, "a non-PEEK BODY[section] sets \\Seen"
        # and the FETCH that set it says so (RFC 3501 6.4.5 SHOULD)
        assert any(b"\\Seen" in r for r in untagged), untagged
        c.ok("STORE 1:2 -FLAGS.SILENT (\\Seen)")
        c.fetch("1:2", "BODY.PEEK[1]")
        assert flags_of(c, 1) == set() and flags_of(c, 2) == set()


@pytest.mark.parametrize("sec", list(PARTS))
def test_sections(nested, sec):
    c, raw = nested
    d = c.fetch("1", f"BODY.PEEK[{sec}]")[1]
    got = section(d, "BODY[" + sec.split(" ")[0])
    assert got == PARTS[sec], f"BODY[{sec}]"


def test_header_fields_and_not(nested):
    c, raw = nested
    header, _ = split(raw)
    d = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (subject FROM x-repeated)] "
                     "BODY.PEEK[HEADER.FIELDS (X-Not-There)])")[1]
    assert section(d, "BODY[HEADER.FIELDS (subject") == (
        b'From: "Ann Example" <ann@example.com>\r\n'
        b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= nested\r\n"
        b"X-Repeated: one\r\nX-Repeated: two\r\n\r\n"), "fields in message order, all occurrences"
    assert section(d, "BODY[HEADER.FIELDS (X-Not") == b"\r\n"
    d = c.fetch("1", "BODY.PEEK[HEADER.FIELDS.NOT (Subject X-Repeated Content-Type)]")[1]
    got = section(d, "BODY[HEADER.FIELDS.NOT")
    expected = b"".join(l + b"\r\n" for l in header.split(b"\r\n")
                        if l and not re.match(rb"(?i)(subject|x-repeated|content-type):", l)) + b"\r\n"
    assert got == expected


def test_partial_fetches(nested):
    c, raw = nested
    _, text = split(raw)
    d = c.fetch("1", "(BODY.PEEK[]<0.10> BODY.PEEK[TEXT]<5.1000000> BODY.PEEK[1]<6.4>)")[1]
    assert d["BODY[]<0>"] == raw[:10]
    assert d["BODY[TEXT]<5>"] == text[5:]
    assert d["BODY[1]<6>"] == PARTS["1"][6:10]
    d = c.fetch("1", f"BODY.PEEK[]<{len(raw) + 100}.10>")[1]
    assert d[f"BODY[]<{len(raw) + 100}>"] == b"", "a partial fetch past the end is empty"
    assert flags_of(c) == set()
    d = c.fetch("1", "BODY[]<0.1>")[1]
    assert d["BODY[]<0>"] == raw[:1]
    assert flags_of(c) == {"\\Seen"}


def test_nonexistent_parts_are_empty(nested):
    c, _ = nested
    d = c.fetch("1", "(BODY.PEEK[9] BODY.PEEK[2.5] BODY.PEEK[9.HEADER])")[1]
    # RFC 3501 leaves the form to the server (Dovecot: "" or NIL); both mean no data
    assert section(d, "BODY[9]") in (b"", None)
    assert section(d, "BODY[2.5]") in (b"", None)
    assert section(d, "BODY[9.HEADER]") in (b"", None)


def test_envelope(nested):
    c, _ = nested
    env = c.fetch("1", "ENVELOPE")[1]["ENVELOPE"]
    date, subject, frm, sender, reply_to, to, cc, bcc, in_reply_to, message_id = env
    assert date == b"Tue, 02 Jan 2024 10:00:00 +0100"
    assert subject == b"=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= nested", "ENVELOPE keeps the raw header"
    assert frm == [[b"Ann Example", None, b"ann", b"example.com"]]
    assert sender == frm and reply_to == frm, "sender and reply-to default to from"
    assert to == [[b"Bob", None, b"bob", b"example.org"], [None, None, b"carol", b"example.org"]]
    assert cc == [[b"=?UTF-8?B?SsO8cmdlbg==?=", None, b"juergen", b"example.de"]]
    assert bcc is None
    assert in_reply_to == b"<parent@tests.tern>"
    assert message_id == b"<nested@tests.tern>"


def _lower(v):
    if isinstance(v, list):
        return [_lower(x) for x in v]
    if isinstance(v, (bytes, str)):
        return v.lower() if isinstance(v, bytes) else v.lower()
    return v


def test_bodystructure(nested):
    c, _ = nested
    bs = c.fetch("1", "BODYSTRUCTURE")[1]["BODYSTRUCTURE"]
    p1, p2, p3, p4 = bs[:4]
    assert _lower(bs[4]) == b"mixed"
    assert _lower(bs[5]) == [b"boundary", b"outer"]
    # text/plain, quoted-printable, size in octets of the encoded body
    assert _lower(p1[:6]) == [b"text", b"plain", [b"charset", b"utf-8"], None, None, b"quoted-printable"]
    assert int(p1[6]) == len(PARTS["1"])
    assert _lower(p2[0][:2]) == [b"text", b"plain"] and _lower(p2[1][:2]) == [b"text", b"html"]
    assert _lower(p2[2]) == b"alternative"
    assert int(p2[1][6]) == len(PARTS["2.2"])
    # message/rfc822: type, subtype, params, id, desc, enc, size, envelope, body, lines
    assert _lower(p3[:2]) == [b"message", b"rfc822"]
    assert int(p3[6]) == len(PARTS["3"])
    assert p3[7][1] == b"attached message", p3[7]
    assert _lower(p3[8][:2]) == [b"text", b"plain"]
    assert int(p3[9]) >= 4
    assert _lower(p4[:6]) == [b"application", b"octet-stream", [b"name", b"data.bin"], None, None, b"base64"]
    assert int(p4[6]) == len(PARTS["4"])
    # extension data: md5, disposition, ...
    assert _lower(p4[8]) == [b"attachment", [b"filename", b"data.bin"]], p4
    # BODY is the same without extension data
    body = c.fetch("1", "BODY")[1]["BODY"]
    assert len(body) == 5 and _lower(body[4]) == b"mixed", body
    assert len(body[3]) == 7, f"BODY carries no extension data: {body[3]}"


def test_bodystructure_single_part(node):
    deliver(node, body="line one\r\nline two\r\n")
    raw = node.cat("alice", "INBOX", 1)
    _, text = split(raw)
    with Raw(node).login() as c:
        c.select()
        bs = c.fetch("1", "BODYSTRUCTURE")[1]["BODYSTRUCTURE"]
        assert _lower(bs[:3]) == [b"text", b"plain", [b"charset", b"utf-8"]]
        assert int(bs[6]) == len(text)
        assert int(bs[7]) == 2, "two lines"
        d = c.fetch("1", "(BODY.PEEK[1] BODY.PEEK[1.MIME])")[1]
        assert d["BODY[1]"] == text, "a single-part message's part 1 is its body"


def test_macros(nested):
    c, raw = nested
    d = c.fetch("1", "ALL")[1]
    assert set(d) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}
    d = c.fetch("1", "FAST")[1]
    assert set(d) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}
    d = c.fetch("1", "FULL")[1]
    assert set(d) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"}
    assert int(d["RFC822.SIZE"]) == len(raw)
    assert flags_of(c) == set(), "the macros do not set \\Seen"


def test_uid_fetch_includes_uid_and_skips_missing(node):
    for _ in range(4):
        deliver(node)
    with Raw(node).login() as c:
        c.select()
        c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        d = c.fetch("1:*", "FLAGS", uid=True)
        assert sorted(int(v["UID"]) for v in d.values()) == [1, 3, 4], "UID FETCH always returns UID"
        assert sorted(d) == [1, 2, 3]
        d = c.fetch("2", "FLAGS", uid=True)
        assert d == {}, "an expunged UID gives no response (and no error)"
        d = c.fetch("4:2", "UID", uid=True)
        assert sorted(int(v["UID"]) for v in d.values()) == [3, 4], "ranges may be reversed"
        d = c.fetch("99:*", "UID", uid=True)
        assert [int(v["UID"]) for v in d.values()] == [4], "n:* includes the highest UID"
        d = c.fetch("*", "UID")
        assert list(d) == [3]


def test_fetch_many_messages_in_one_stream(node):
    deliver_many(node, 200)
    with Raw(node).login() as c:
        c.select()
        d = c.fetch("1:*", "(UID FLAGS RFC822.SIZE)", uid=True)
        assert sorted(int(v["UID"]) for v in d.values()) == list(range(1, 201))
        d = c.fetch("1:*", "BODY.PEEK[]", uid=True)
        assert len(d) == 200
        for seq, v in d.items():
            assert b"\r\nSubject: bulk" in v["BODY[]"], seq
        for seq in (1, 200):
            assert d[seq]["BODY[]"] == node.cat("alice", "INBOX", int(d[seq]["UID"]))
