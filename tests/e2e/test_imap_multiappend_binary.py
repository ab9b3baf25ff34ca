"""MULTIAPPEND (RFC 3502): several messages in one APPEND, all or nothing,
APPENDUID with a UID set; BINARY (RFC 3516): FETCH BINARY[]/BINARY.PEEK/
BINARY.SIZE decode base64 and quoted-printable parts, answer with literal8
when the data holds NULs, refuse an unknown encoding with NO [UNKNOWN-CTE],
and APPEND takes literal8."""

import base64
import re

import pytest

from imap_helpers import Raw, capabilities, fetch_dict, imap_node

BLOB = bytes(range(256)) * 4          # holds NULs: needs literal8


def msg(subject, body="hello\r\n"):
    return f"From: a@a.test\r\nTo: b@b.test\r\nSubject: {subject}\r\n\r\n{body}".encode()


def multiappend(c, folder, parts):
    """APPEND folder (flags date {n+} data)... in one command, LITERAL+."""
    t = c.tag()
    out = f"{t} APPEND {folder}".encode()
    for flags, date, data in parts:
        out += b" "
        if flags is not None:
            out += flags.encode() + b" "
        if date is not None:
            out += f'"{date}" '.encode()
        out += b"{%d+}\r\n" % len(data) + data
    c.send(out + b"\r\n")
    return c.wait(t)


@pytest.fixture
def client(make_ternd):
    node = imap_node(make_ternd, max_bad_commands=100)
    c = Raw(node).login()
    yield c
    c.close()


def subjects(c):
    untagged = c.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out = []
    for r in untagged:
        if b" FETCH " in r:
            _, d = fetch_dict(r)
            out.append(list(d.values())[0].decode().strip())
    return out


def test_capabilities(client):
    caps = capabilities(client.ok("CAPABILITY"))
    assert "MULTIAPPEND" in caps and "BINARY" in caps, caps


def test_multiappend_stores_all_in_order(client):
    c = client
    c.ok("CREATE multi")
    untagged, t = multiappend(c, "multi", [
        ("(\\Seen)", "01-Feb-2020 10:00:00 +0100", msg("one")),
        (None, None, msg("two")),
        ("(\\Flagged kw1)", "03-Mar-2021 12:00:00 +0000", msg("three")),
    ])
    m = re.match(r"OK \[APPENDUID (\d+) 1:3\]", t)
    assert m, t
    untagged = c.select("multi")
    assert b"* 3 EXISTS" in untagged
    assert subjects(c) == ["Subject: one", "Subject: two", "Subject: three"]
    got = {}
    for r in c.ok("FETCH 1:3 (FLAGS INTERNALDATE)"):
        n, d = fetch_dict(r)
        got[n] = d
    assert [str(x) for x in got[1]["FLAGS"] if x != "\\Recent"] == ["\\Seen"]
    assert got[1]["INTERNALDATE"] == b"01-Feb-2020 10:00:00 +0100"
    assert [x for x in got[2]["FLAGS"] if x != "\\Recent"] == []
    assert sorted(str(x) for x in got[3]["FLAGS"] if x != "\\Recent") == ["\\Flagged", "kw1"]
    # into the selected folder: the new messages are reported
    untagged, t = multiappend(c, "multi", [(None, None, msg("four")), (None, None, msg("five"))])
    assert re.match(r"OK \[APPENDUID \d+ 4:5\]", t), t
    assert b"* 5 EXISTS" in untagged, untagged


def test_multiappend_all_or_nothing(client):
    c = client
    c.ok("CREATE atomic")
    cases = [
        ([(None, None, msg("a")), ("(\\Recent)", None, msg("b"))], "BAD"),
        ([(None, None, msg("a")), (None, "31-Foo-2020 00:00:00 +0000", msg("b"))], "BAD"),
        ([(None, None, msg("a")), (None, None, b"")], "NO"),
    ]
    for parts, want in cases:
        _, t = multiappend(c, "atomic", parts)
        assert t.startswith(want), (parts, t)
    _, t = multiappend(c, "nosuch", [(None, None, msg("a")), (None, None, msg("b"))])
    assert t.startswith("NO [TRYCREATE]"), t
    untagged = c.ok("STATUS atomic (MESSAGES UIDNEXT)")
    assert b"MESSAGES 0" in untagged[0] and b"UIDNEXT 1" in untagged[0], untagged
    # a trailing non-literal is a syntax error, nothing stored
    t = c.tag()
    c.send(f"{t} APPEND atomic {{3+}}\r\nabc (\\Seen)\r\n".encode())
    _, r = c.wait(t)
    assert r.startswith("BAD"), r
    assert b"MESSAGES 0" in c.ok("STATUS atomic (MESSAGES)")[0]


def test_multiappend_over_quota_refused_whole(make_ternd):
    node = imap_node(make_ternd, max_bad_commands=100)
    node.ctl("user", "quota", "alice", "3K")
    c = Raw(node).login()
    big = msg("big", "x" * 1200 + "\r\n")
    _, t = multiappend(c, "INBOX", [(None, None, big), (None, None, big), (None, None, big)])
    assert t.startswith("NO [OVERQUOTA]"), t
    assert b"MESSAGES 0" in c.ok("STATUS INBOX (MESSAGES)")[0]
    _, t = multiappend(c, "INBOX", [(None, None, big), (None, None, big)])
    assert t.startswith("OK"), t
    c.close()


B64 = base64.encodebytes(BLOB).decode().replace("\n", "\r\n")
MIME = (
    "From: a@a.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n'
    "--zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    f"{B64}"
    "--zz\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    "caf=C3=A9 soft=\r\nbreak=3D\r\n"
    "--zz\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-tern-magic\r\n\r\n"
    "???\r\n"
    "--zz\r\nContent-Type: text/plain\r\n\r\nplain seven bit\r\n"
    "--zz--\r\n").encode()


@pytest.fixture
def mime_box(client):
    _, t = client.cmd_literal("APPEND INBOX", MIME)
    assert t.startswith("OK"), t
    client.select()
    return client


def fetch_raw(c, items):
    untagged = c.ok(f"FETCH 1 ({items})")
    lines = [r for r in untagged if b" FETCH " in r]
    assert len(lines) == 1, untagged
    return lines[0]


def test_fetch_binary_decodes(mime_box):
    c = mime_box
    line = fetch_raw(c, "BINARY.PEEK[1]")
    assert b"BINARY[1] ~{%d}\r\n" % len(BLOB) in line, line[:80]
    _, d = fetch_dict(line)
    assert d["BINARY[1]"] == BLOB
    _, d = fetch_dict(fetch_raw(c, "BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[4]"))
    assert d["BINARY.SIZE[1]"] == str(len(BLOB))
    assert d["BINARY.SIZE[2]"] == str(len("café softbreak=".encode()))
    _, d = fetch_dict(fetch_raw(c, "BINARY.PEEK[2] BINARY.PEEK[4]"))
    assert d["BINARY[2]"] == "café softbreak=".encode()
    assert d["BINARY[4]"] == b"plain seven bit"
    _, d = fetch_dict(fetch_raw(c, "BINARY.PEEK[1]<256.4>"))
    assert d["BINARY[1]<256>"] == b"\x00\x01\x02\x03"
    # PEEK kept \Seen off; BINARY sets it
    _, d = fetch_dict(fetch_raw(c, "FLAGS"))
    assert "\\Seen" not in d["FLAGS"]
    untagged = c.ok("FETCH 1 (BINARY[2])")
    assert any(b"\\Seen" in r for r in untagged), untagged


def test_fetch_binary_unknown_cte(mime_box):
    c = mime_box
    _, t = c.cmd("FETCH 1 (BINARY.PEEK[3])")
    assert t.startswith("NO [UNKNOWN-CTE]"), t
    _, t = c.cmd("FETCH 1 (BINARY.SIZE[3])")
    assert t.startswith("NO [UNKNOWN-CTE]"), t
    # a missing part is NIL, not an error
    _, d = fetch_dict(fetch_raw(c, "BINARY.PEEK[9]"))
    assert d["BINARY[9]"] is None


def test_append_literal8(client):
    c = client
    data = b"From: a@a.test\r\nSubject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\n" + \
        BLOB.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
    t = c.tag()
    c.send(f"{t} APPEND INBOX ~{{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    _, r = c.wait(t)
    assert r.startswith("OK [APPENDUID"), r
    # a NUL in an ordinary literal is refused
    t = c.tag()
    c.send(f"{t} APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    _, r = c.wait(t)
    assert r.startswith("BAD"), r
    c.select()
    _, d = fetch_dict(fetch_raw(c, "BODY.PEEK[]"))
    assert d["BODY[]"] == data
    line = fetch_raw(c, "BINARY.PEEK[1]")
    _, d = fetch_dict(line)
    assert d["BINARY[1]"] == data.split(b"\r\n\r\n", 1)[1]
    assert b"~{" in line
