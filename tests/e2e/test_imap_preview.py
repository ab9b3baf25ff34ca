"""PREVIEW (RFC 8970): FETCH n (PREVIEW) answers a preview of the message's
first text part - transfer-decoded, converted to UTF-8, whitespace runs
made one space, HTML markup dropped, at most 256 characters - as a string
(quoted when it can be, a literal for 8-bit text unless UTF8=ACCEPT), "" for
a message without text; PREVIEW (LAZY) is accepted; PREVIEW does not set
\\Seen; bad modifiers are BAD and the connection goes on."""

import base64
import re

import pytest

from imap_helpers import Raw, capabilities, fetch_dict, imap_node

PLAIN = (b"From: a@a.test\r\nTo: b@b.test\r\nSubject: plain\r\n\r\n"
         b"Hello   Bob,\r\n\r\n\tthe meeting is at 10.\r\n> quoted reply line\r\nSee you\r\n")
QP_LATIN1 = (b"From: a@a.test\r\nSubject: latin1\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: text/plain; charset=iso-8859-1\r\n"
             b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
             b"Caf=E9 cr=E8me =\r\nbr=FBl=E9e\r\n")
HTML_ONLY = (b"From: a@a.test\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: text/html; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" +
             base64.encodebytes(b"<html><head><title>T</title><style>p {color: red}</style>"
                                b"</head><body><p>Fish &amp; chips</p><p>for <b>two</b>"
                                b"</p><!-- hidden --></body></html>").replace(b"\n", b"\r\n"))
LONG_TEXT = ("word " * 100).encode()
LONG = b"From: a@a.test\r\nSubject: long\r\n\r\n" + LONG_TEXT + b"\r\n"
ATTACHMENT_ONLY = (b"From: a@a.test\r\nSubject: att\r\nMIME-Version: 1.0\r\n"
                   b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
                   b"--b\r\nContent-Type: application/pdf\r\n"
                   b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n")
ALTERNATIVE = (b"From: a@a.test\r\nSubject: alt\r\nMIME-Version: 1.0\r\n"
               b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
               b"--b\r\nContent-Type: text/html\r\n\r\n<p>html version</p>\r\n"
               b"--b\r\nContent-Type: text/plain\r\n\r\nplain version\r\n--b--\r\n")
QUOTES = b'From: a@a.test\r\nSubject: q\r\n\r\nShe said "hi" \\ bye\r\n'

MESSAGES = [PLAIN, QP_LATIN1, HTML_ONLY, LONG, ATTACHMENT_ONLY, ALTERNATIVE, QUOTES]


@pytest.fixture
def box(make_ternd):
    node = imap_node(make_ternd, max_bad_commands=100, max_message_size="4M")
    c = Raw(node).login()
    for m in MESSAGES:
        _, t = c.cmd_literal("APPEND INBOX", m)
        assert t.startswith("OK"), t
    c.select()
    yield c
    c.close()


def one_fetch(c, seq, items):
    untagged = c.ok(f"FETCH {seq} {items}")
    lines = [r for r in untagged if re.match(rb"\* \d+ FETCH ", r)]
    assert len(lines) == 1, untagged
    return lines[0]


def test_preview_capability(box):
    caps = capabilities(box.ok("CAPABILITY"))
    assert "PREVIEW" in caps, caps


def test_preview_plain_exact_bytes(box):
    line = one_fetch(box, 1, "(PREVIEW)")
    assert line == b'* 1 FETCH (PREVIEW "Hello Bob, the meeting is at 10. See you")', line


def test_preview_lazy_accepted(box):
    for items in ("(PREVIEW (LAZY))", "PREVIEW (LAZY)", "(UID PREVIEW (lazy) FLAGS)"):
        _, d = fetch_dict(one_fetch(box, 1, items))
        assert d["PREVIEW"] == b"Hello Bob, the meeting is at 10. See you", (items, d)


def test_preview_decodes_transfer_encoding_and_charset(box):
    line = one_fetch(box, 2, "(PREVIEW)")
    want = "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e".encode()
    # 8-bit text: a literal (no UTF8=ACCEPT)
    assert line == b"* 2 FETCH (PREVIEW {%d}\r\n" % len(want) + want + b")", line


def test_preview_utf8_accept_quoted(box):
    box.ok("ENABLE UTF8=ACCEPT")
    line = one_fetch(box, 2, "(PREVIEW)")
    assert line == '* 2 FETCH (PREVIEW "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e")'.encode(), line


def test_preview_html_stripped(box):
    _, d = fetch_dict(one_fetch(box, 3, "(PREVIEW)"))
    assert d["PREVIEW"] == b"Fish & chips for two"


def test_preview_at_most_256_characters(box):
    _, d = fetch_dict(one_fetch(box, 4, "(PREVIEW)"))
    # 51 times "word " and the "w" of the 52nd: 256 characters, cut there
    assert d["PREVIEW"] == LONG_TEXT[:256], d


def test_preview_without_text_is_empty_string(box):
    line = one_fetch(box, 5, "(PREVIEW)")
    assert line == b'* 5 FETCH (PREVIEW "")', line


def test_preview_alternative_prefers_plain(box):
    _, d = fetch_dict(one_fetch(box, 6, "(PREVIEW)"))
    assert d["PREVIEW"] == b"plain version"


def test_preview_quoted_specials_escaped(box):
    line = one_fetch(box, 7, "(PREVIEW)")
    assert line == b'* 7 FETCH (PREVIEW "She said \\"hi\\" \\\\ bye")', line


def test_preview_does_not_set_seen(box):
    box.ok("FETCH 1:* (PREVIEW)")
    for v in box.fetch("1:*", "(FLAGS)").values():
        assert "\\Seen" not in v["FLAGS"], v


def test_preview_many_messages_and_uid_fetch(box):
    got = box.fetch("1:*", "(PREVIEW)", uid=True)
    assert len(got) == len(MESSAGES)
    assert got[6]["PREVIEW"] == b"plain version"


def test_preview_bad_modifier(box):
    for items in ("(PREVIEW (FUZZY))", "(PREVIEW ())", "PREVIEW (LAZY FOO)", "(FLAGS (LAZY))"):
        _, t = box.cmd(f"FETCH 1 {items}")
        assert t.startswith("BAD"), (items, t)
    _, d = fetch_dict(one_fetch(box, 7, "(PREVIEW)"))
    assert d["PREVIEW"] == b'She said "hi" \\ bye'


def test_preview_rfc8970_example_exchange(box):
    # RFC 8970 section 3.1's example, byte for byte
    box.ok("CREATE rfc")
    _, t = box.cmd_literal("APPEND rfc", b"From: a@a.test\r\nSubject: x\r\n\r\nPreview text!\r\n")
    assert t.startswith("OK"), t
    box.select("rfc")
    box.send(b"A1 FETCH 1 (PREVIEW)\r\n")
    assert box.response() == b'* 1 FETCH (PREVIEW "Preview text!")'
    assert box.response().startswith(b"A1 OK ")


def test_preview_of_large_message_and_with_other_items(box):
    # text first, then an attachment far past what a PREVIEW-only FETCH reads
    blob = base64.encodebytes(bytes(range(256)) * 4096).replace(b"\n", b"\r\n")   # ~1.4 MB
    big = (b"From: a@a.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: text/plain\r\n\r\nSee the attached file.\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + blob + b"--b--\r\n")
    _, t = box.cmd_literal("APPEND INBOX", big)
    assert t.startswith("OK"), t
    box.ok("NOOP")
    n = len(MESSAGES) + 1
    line = one_fetch(box, n, "(PREVIEW)")
    assert line == b'* %d FETCH (PREVIEW "See the attached file.")' % n, line[:200]
    # with a partial of the whole message, and with the whole message
    _, d = fetch_dict(one_fetch(box, n, "(PREVIEW BODY.PEEK[]<0.5>)"))
    assert d["PREVIEW"] == b"See the attached file." and d["BODY[]<0>"] == b"From:", d
    _, d = fetch_dict(one_fetch(box, n, "(BODY.PEEK[] PREVIEW RFC822.SIZE)"))
    assert d["PREVIEW"] == b"See the attached file." and d["BODY[]"] == big
    assert d["RFC822.SIZE"] == str(len(big))
