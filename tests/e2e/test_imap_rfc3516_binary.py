"""BINARY (RFC 3516) to the letter, for single-part messages as well as for
parts of a multipart: BINARY[1] of a quoted-printable or base64 body is the
decoded bytes, BINARY.SIZE[1] their count, a partial BINARY.PEEK[1]<10.10>
slices the decoded bytes, BINARY[] is the whole message (header and body,
nothing to decode at the top level), an empty part is a zero-length literal,
an unknown Content-Transfer-Encoding is NO [UNKNOWN-CTE], and decoded data
holding a NUL goes out as literal8 (~{n})."""

import base64
import re

import pytest

from imap_helpers import Raw, fetch_dict, imap_node

QP_TEXT = "Caf\u00e9 cr\u00e8me, the =3D sign and a soft break here.".encode()
QP_MSG = (b"From: a@a.test\r\nTo: b@b.test\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: text/plain; charset=utf-8\r\n"
          b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
          b"Caf=C3=A9 cr=C3=A8me, the =3D3D sign and a soft=\r\n break here.")
B64_DATA = bytes(range(256))
B64_MSG = (b"From: a@a.test\r\nSubject: b64\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: BASE64\r\n\r\n" +
           base64.encodebytes(B64_DATA).replace(b"\n", b"\r\n"))
EMPTY_MSG = (b"From: a@a.test\r\nSubject: empty parts\r\nMIME-Version: 1.0\r\n"
             b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
             b"--b\r\nContent-Type: text/plain\r\n"
             b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
             b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
             b"\r\n--b--\r\n")
UNKNOWN_MSG = (b"From: a@a.test\r\nSubject: unknown\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-tern-rot13\r\n\r\n"
               b"uryyb\r\n")
NESTED_MSG = (b"From: a@a.test\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
              b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n'
              b"--o\r\nContent-Type: message/rfc822\r\n\r\n"
              b"From: c@c.test\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
              b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
              b"inner =E2=9C=93 text\r\n"
              b"--o--\r\n")


@pytest.fixture
def box(make_ternd):
    node = imap_node(make_ternd, max_bad_commands=100)
    c = Raw(node).login()
    for m in (QP_MSG, B64_MSG, EMPTY_MSG, UNKNOWN_MSG, NESTED_MSG):
        _, t = c.cmd_literal("APPEND INBOX", m)
        assert t.startswith("OK"), t
    c.select()
    yield c
    c.close()


def one_fetch(c, seq, items):
    untagged = c.ok(f"FETCH {seq} ({items})")
    lines = [r for r in untagged if re.match(rb"\* \d+ FETCH ", r)]
    assert len(lines) == 1, untagged
    return lines[0]


def test_binary_single_part_quoted_printable_is_decoded(box):
    line = one_fetch(box, 1, "BINARY.PEEK[1]")
    assert line == b"* 1 FETCH (BINARY[1] {%d}\r\n" % len(QP_TEXT) + QP_TEXT + b")", line


def test_binary_size_counts_decoded_bytes(box):
    _, d = fetch_dict(one_fetch(box, 1, "BINARY.SIZE[1]"))
    assert d["BINARY.SIZE[1]"] == str(len(QP_TEXT))
    _, d = fetch_dict(one_fetch(box, 2, "BINARY.SIZE[1]"))
    assert d["BINARY.SIZE[1]"] == "256"


def test_binary_partial_slices_decoded_bytes(box):
    line = one_fetch(box, 1, "BINARY.PEEK[1]<10.10>")
    assert line == b"* 1 FETCH (BINARY[1]<10> {10}\r\n" + QP_TEXT[10:20] + b")", line
    # past the end: empty; straddling the end: clipped
    line = one_fetch(box, 1, "BINARY.PEEK[1]<1000.10>")
    assert line == b"* 1 FETCH (BINARY[1]<1000> {0}\r\n)", line
    n = len(QP_TEXT)
    line = one_fetch(box, 1, f"BINARY.PEEK[1]<{n - 3}.10>")
    assert line == b"* 1 FETCH (BINARY[1]<%d> {3}\r\n" % (n - 3) + QP_TEXT[-3:] + b")", line


def test_binary_single_part_base64_with_nul_is_literal8(box):
    line = one_fetch(box, 2, "BINARY.PEEK[1]")
    assert line == b"* 2 FETCH (BINARY[1] ~{256}\r\n" + B64_DATA + b")", line[:80]
    # a slice without a NUL is an ordinary literal
    line = one_fetch(box, 2, "BINARY.PEEK[1]<65.3>")
    assert line == b"* 2 FETCH (BINARY[1]<65> {3}\r\nABC)", line


def test_binary_empty_is_whole_message(box):
    line = one_fetch(box, 1, "BINARY.PEEK[]")
    assert line == b"* 1 FETCH (BINARY[] {%d}\r\n" % len(QP_MSG) + QP_MSG + b")", line
    _, d = fetch_dict(one_fetch(box, 1, "BINARY.SIZE[]"))
    assert d["BINARY.SIZE[]"] == str(len(QP_MSG))
    line = one_fetch(box, 1, "BINARY.PEEK[]<0.5>")
    assert line == b"* 1 FETCH (BINARY[]<0> {5}\r\nFrom:)", line


def test_binary_empty_part_is_zero_length_literal(box):
    line = one_fetch(box, 3, "BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[1]")
    assert line == b"* 3 FETCH (BINARY[1] {0}\r\n BINARY[2] {0}\r\n BINARY.SIZE[1] 0)", line


def test_binary_unknown_cte_is_no_unknown_cte(box):
    _, t = box.cmd("FETCH 4 (BINARY.PEEK[1])")
    assert t.startswith("NO [UNKNOWN-CTE]"), t
    _, t = box.cmd("FETCH 4 (BINARY.SIZE[1])")
    assert t.startswith("NO [UNKNOWN-CTE]"), t
    # the connection survives and BODY[] is still served
    _, d = fetch_dict(one_fetch(box, 4, "BODY.PEEK[1]"))
    assert d["BODY[1]"] == b"uryyb\r\n"


def test_binary_part_of_embedded_message(box):
    # 1 is the message/rfc822 part; 1.1 its (single) text body, QP-encoded
    _, d = fetch_dict(one_fetch(box, 5, "BINARY.PEEK[1.1]"))
    assert d["BINARY[1.1]"] == "inner \u2713 text".encode()


def test_binary_sets_seen_peek_does_not(box):
    _, d = fetch_dict(one_fetch(box, 1, "FLAGS"))
    assert "\\Seen" not in d["FLAGS"]
    untagged = box.ok("FETCH 1 (BINARY[1])")
    _, d = fetch_dict(untagged[0])
    assert d["BINARY[1]"] == QP_TEXT
    assert "\\Seen" in d["FLAGS"], d
