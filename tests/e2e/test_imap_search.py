"""SEARCH (RFC 3501 6.4.4) end to end: every search key, sequence and UID sets,
OR/NOT/parentheses, internal and sent dates, sizes, flags and keywords,
HEADER/BODY/TEXT substring matches that are case-insensitive and look through
MIME encoded-words, base64 and quoted-printable; CHARSET UTF-8; ESEARCH
(RFC 4731) return options."""

import base64
import re

import pytest

from imap_helpers import Raw, imap_node

B64_SUBJECT = base64.b64encode("Grüße aus München".encode()).decode()
B64_BODY = base64.b64encode("Geheimnis im Körper, streng vertraulich\r\n".encode()).decode()
B64_ATTACHMENT = base64.b64encode(b"there is a needle in attachment here\r\n").decode()

CORPUS = [
    # (flags, internal date, message)
    ("(\\Seen \\Answered)", "01-Jan-2020 10:00:00 +0000",
     "From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: Quarterly report\r\n"
     "Date: Wed, 01 Jan 2020 10:00:00 +0000\r\nMessage-ID: <m1@t>\r\n\r\n"
     "The numbers look good.\r\n"),
    ("(\\Flagged $Work)", "15-Jun-2021 12:00:00 +0000",
     "From: =?UTF-8?Q?J=C3=BCrgen?= <juergen@x.test>\r\nTo: bob@b.test\r\nCc: carol@c.test\r\n"
     f"Subject: =?UTF-8?B?{B64_SUBJECT}?=\r\n"
     "Date: Mon, 14 Jun 2021 23:30:00 -0500\r\nMIME-Version: 1.0\r\n"
     "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
     f"{B64_BODY}\r\n"),
    ("(\\Deleted \\Draft)", "20-Jul-2022 08:00:00 +0000",
     "From: erin@e.test\r\nTo: bob@b.test\r\nBcc: dave@d.test\r\nSubject: hello\r\n"
     "X-Custom: magic-value\r\nDate: Wed, 20 Jul 2022 08:00:00 +0000\r\nMIME-Version: 1.0\r\n"
     "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
     "caf=C3=A9 au lait soft=\r\nbreak\r\n" + "padding line to make this one large\r\n" * 200),
    ("()", "20-Jul-2022 23:00:00 +0000",
     "From: erin@e.test\r\nTo: bob@b.test\r\nSubject: Re: hello\r\n"
     "Date: Wed, 20 Jul 2022 23:00:00 +0000\r\nMIME-Version: 1.0\r\n"
     'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
     "--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
     "--b1\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment\r\n"
     "Content-Transfer-Encoding: base64\r\n\r\n"
     f"{B64_ATTACHMENT}\r\n--b1--\r\n"),
]


@pytest.fixture
def corpus(make_ternd):
    node = imap_node(make_ternd, max_bad_commands=100)
    c = Raw(node).login()
    for flags, date, msg in CORPUS:
        _, t = c.cmd_literal(f'APPEND INBOX {flags} "{date}"', msg.encode())
        assert t.startswith("OK"), t
    c.select()
    yield c
    c.close()


def s(c, criteria, uid=False):
    return sorted(c.search(criteria, uid=uid))


def s_utf8(c, key, value, uid=False):
    """SEARCH CHARSET UTF-8 <key> {literal}: 8-bit text travels as a literal."""
    untagged, t = c.cmd_literal(f"{'UID ' if uid else ''}SEARCH CHARSET UTF-8 {key}", value.encode())
    assert t.startswith("OK"), t
    lines = [r for r in untagged if r.startswith(b"* SEARCH")]
    assert len(lines) == 1, untagged
    return sorted(int(x) for x in lines[0].split()[2:])


def test_flag_keys(corpus):
    c = corpus
    assert s(c, "ALL") == [1, 2, 3, 4]
    assert s(c, "SEEN") == [1]
    assert s(c, "UNSEEN") == [2, 3, 4]
    assert s(c, "ANSWERED") == [1]
    assert s(c, "UNANSWERED") == [2, 3, 4]
    assert s(c, "FLAGGED") == [2]
    assert s(c, "UNFLAGGED") == [1, 3, 4]
    assert s(c, "DELETED") == [3]
    assert s(c, "UNDELETED") == [1, 2, 4]
    assert s(c, "DRAFT") == [3]
    assert s(c, "UNDRAFT") == [1, 2, 4]
    assert s(c, "KEYWORD $Work") == [2]
    assert s(c, "UNKEYWORD $Work") == [1, 3, 4]
    assert s(c, "KEYWORD $Nothing") == []
    recent, old, new = s(c, "RECENT"), s(c, "OLD"), s(c, "NEW")
    assert sorted(recent + old) == [1, 2, 3, 4] and not set(recent) & set(old)
    assert set(new) == set(recent) & {2, 3, 4}, "NEW = RECENT UNSEEN"


def test_address_and_header_keys(corpus):
    c = corpus
    assert s(c, "FROM alice") == [1]
    assert s(c, "FROM ALICE@A.TEST") == [1], "case-insensitive"
    assert s(c, "FROM juergen") == [2]
    assert s(c, "TO bob") == [1, 2, 3, 4]
    assert s(c, "CC carol") == [2]
    assert s(c, "BCC dave") == [3]
    assert s(c, "SUBJECT hello") == [3, 4]
    assert s(c, 'SUBJECT "re: HELLO"') == [4]
    assert s(c, "HEADER X-Custom magic") == [3]
    assert s(c, 'HEADER x-custom ""') == [3], "an empty string matches every message with the field"
    assert s(c, 'HEADER Message-ID ""') == [1]
    assert s(c, "HEADER X-Custom nothing-like-it") == []


def test_encoded_words_and_utf8(corpus):
    c = corpus
    assert s_utf8(c, "SUBJECT", "münchen") == [2], "through a base64 encoded-word, case-insensitive"
    assert s_utf8(c, "SUBJECT", "Grüße") == [2]
    assert s_utf8(c, "FROM", "Jürgen") == [2], "through a Q encoded-word in a display name"
    assert s(c, "CHARSET UTF-8 SUBJECT quarterly") == [1]
    assert s(c, "CHARSET US-ASCII SUBJECT quarterly") == [1]
    untagged, t = c.cmd("SEARCH CHARSET X-NO-SUCH-CHARSET SUBJECT a")
    assert t.startswith("NO [BADCHARSET"), t


def test_body_and_text_through_transfer_encodings(corpus):
    c = corpus
    assert s(c, "BODY numbers") == [1]
    assert s(c, "BODY Quarterly") == [], "the subject is not in the body"
    assert s(c, "TEXT Quarterly") == [1], "TEXT covers the header too"
    assert s_utf8(c, "BODY", "körper") == [2], "base64 body decoded"
    assert s(c, "BODY VERTRAULICH") == [2]
    assert s_utf8(c, "BODY", "café au lait") == [3], "quoted-printable decoded"
    assert s(c, "BODY softbreak") == [3], "a soft line break joins the words"
    assert s(c, 'BODY "needle in attachment"') == [4], "base64 text part of a multipart decoded"
    assert s(c, "TEXT needle") == [4]
    assert s(c, "TEXT magic-value") == [3]


def test_dates_and_sizes(corpus):
    c = corpus
    assert s(c, "BEFORE 15-Jun-2021") == [1]
    assert s(c, "ON 15-Jun-2021") == [2]
    assert s(c, "SINCE 15-Jun-2021") == [2, 3, 4]
    assert s(c, "ON 20-Jul-2022") == [3, 4]
    assert s(c, "SINCE 21-Jul-2022") == []
    assert s(c, "ON 1-Jan-2020") == [1], "one-digit day"
    # Sent dates use the Date: header's own date, disregarding time and zone
    assert s(c, "SENTON 14-Jun-2021") == [2]
    assert s(c, "SENTBEFORE 14-Jun-2021") == [1]
    assert s(c, "SENTSINCE 20-Jul-2022") == [3, 4]
    assert s(c, "SENTSINCE 21-Jul-2022") == []
    sizes = c.fetch("1:4", "RFC822.SIZE")
    size3 = int(sizes[3]["RFC822.SIZE"])
    assert size3 > 5000
    assert s(c, "LARGER 5000") == [3]
    assert s(c, "SMALLER 5000") == [1, 2, 4]
    assert s(c, f"LARGER {size3}") == [], "LARGER is strictly larger"
    assert 3 not in s(c, f"SMALLER {size3}")
    assert 3 in s(c, f"LARGER {size3 - 1}")


def test_sets_and_logic(corpus):
    c = corpus
    assert s(c, "2,4") == [2, 4]
    assert s(c, "3:*") == [3, 4]
    assert s(c, "*") == [4]
    assert s(c, "4:2") == [2, 3, 4]
    assert s(c, "UID 2:3") == [2, 3]
    assert s(c, "UID 1,4:*") == [1, 4]
    assert s(c, "OR SEEN FLAGGED") == [1, 2]
    assert s(c, "NOT SEEN") == [2, 3, 4]
    assert s(c, "NOT (OR SEEN FLAGGED)") == [3, 4]
    assert s(c, "(OR SEEN DELETED) UNDRAFT") == [1]
    assert s(c, "SUBJECT hello UNDELETED") == [4], "keys are ANDed"
    assert s(c, "OR (SUBJECT hello DELETED) (FROM alice SEEN)") == [1, 3]
    assert s(c, "OR OR SEEN FLAGGED DRAFT") == [1, 2, 3]
    assert s(c, "NOT NOT SEEN") == [1]
    assert s(c, "1:* UNSEEN 2:3") == [2, 3]


def test_uid_search_after_expunge(corpus):
    c = corpus
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")       # removes UIDs 1 and 3 (3 already \Deleted)
    assert s(c, "ALL") == [1, 2]
    assert s(c, "ALL", uid=True) == [2, 4]
    assert s(c, "SUBJECT hello", uid=True) == [4]
    assert s(c, "UID 1:3", uid=True) == [2]
    assert s(c, "2", uid=True) == [4], "a sequence set in UID SEARCH is still sequence numbers"
    assert s(c, "UID 4") == [2]


def _esearch(untagged):
    rs = [r for r in untagged if r.startswith(b"* ESEARCH")]
    assert len(rs) == 1, untagged
    return rs[0].decode()


def test_esearch(corpus):
    c = corpus
    tag = f"T{c.n + 1}"
    line = _esearch(c.ok("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN"))
    assert line.startswith(f'* ESEARCH (TAG "{tag}")'), line
    m = dict(re.findall(r"\b(MIN|MAX|COUNT|ALL) (\S+)", line))
    assert m == {"MIN": "2", "MAX": "4", "COUNT": "3", "ALL": "2:4"}, line
    line = _esearch(c.ok("UID SEARCH RETURN (COUNT) ALL"))
    assert " UID " in line and re.search(r"\bCOUNT 4\b", line), line
    line = _esearch(c.ok("SEARCH RETURN () FLAGGED"))
    assert re.search(r"\bALL 2$", line), "RETURN () means ALL"
    line = _esearch(c.ok("SEARCH RETURN (MIN MAX) KEYWORD $Nothing"))
    assert "MIN" not in line and "MAX" not in line, "no matches: MIN/MAX omitted"


def test_bad_search_syntax(corpus):
    c = corpus
    for bad in ("BEFORE 32-Jan-2020", "BEFORE yesterday", "LARGER x", "FROB", "OR SEEN",
                "(SEEN", "NOT", "UID x:y", "HEADER", "KEYWORD"):
        _, t = c.cmd(f"SEARCH {bad}")
        assert t.startswith("BAD"), f"SEARCH {bad}: {t}"
    c.ok("NOOP")


def test_body_keys_in_one_search_are_bounded(corpus):
    """Each BODY/TEXT key scans every message it meets on the loop thread:
    a program may have 16 of them (docs/protocols.md); one more is a clear
    BAD and the session goes on."""
    c = corpus
    every = s(c, "ALL")
    ok16 = " ".join(["NOT BODY zzz-not-there"] * 16)
    assert s(c, ok16) == every
    _, t = c.cmd(f"SEARCH {ok16} TEXT x")
    assert t.startswith("BAD") and "Too many BODY/TEXT keys" in t, t
    _, t = c.cmd(f"UID SORT (DATE) UTF-8 {ok16} OR SEEN NOT BODY x")
    assert t.startswith("BAD") and "Too many BODY/TEXT keys" in t, t
    assert s(c, "NOT BODY zzz-not-there") == every
