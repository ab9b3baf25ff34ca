"""LMTP delivery as an MTA does it: smtplib, swaks and a raw client; DATA and
BDAT, pipelining, per-recipient replies, user+folder, domains and size
limits. After every 250 the message must already be visible through ternctl
(no waiting: "250 means on disk")."""

import shutil
import smtplib
import subprocess

import pytest

from ternlib import (LmtpConn, dot_stuff, make_message, normalize_eol, split_added_headers,
                     unique_subject, DEFAULT_FOLDERS, IO_TIMEOUT)

SENDER = "sender@remote.test"


def assert_stored_once(node, user, folder, subject, original=None, sender=SENDER, rcpt=None):
    raw = node.find(user, folder, subject)
    fields, rest = split_added_headers(raw)
    names = {name.lower(): value for name, value in fields}
    assert set(names) == {"return-path", "delivered-to"}, \
        f"the stored message must start with Return-Path and Delivered-To, got {fields!r}"
    assert names["return-path"] == f"<{sender}>"
    assert (rcpt or f"{user}@example.org").lower() in names["delivered-to"].lower()
    if original is not None:
        assert normalize_eol(rest) == normalize_eol(original), "stored message differs from what was sent"
    return raw


def test_lhlo_advertises_extensions(ternd):
    with LmtpConn(ternd.lmtp_addr) as c:
        assert c.greeting.code == 220
        r = c.lhlo()
        keywords = {line[4:].split(" ")[0].upper(): line[4:] for line in r.lines[1:]}
        for ext in ("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "CHUNKING", "SIZE"):
            assert ext in keywords, f"LHLO does not advertise {ext}: {r.lines!r}"
        assert keywords["SIZE"].split() == ["SIZE", str(1024 * 1024)], r.lines


def test_smtplib_single_recipient(ternd):
    subject = unique_subject("smtplib")
    msg = make_message(subject)
    with smtplib.LMTP(*ternd.lmtp_addr, timeout=IO_TIMEOUT) as lmtp:
        refused = lmtp.sendmail(SENDER, ["alice@example.org"], msg)
    assert refused == {}
    assert_stored_once(ternd, "alice", "INBOX", subject, msg)
    assert ternd.subjects("bob") == []


def test_smtplib_multi_recipient_one_reply_each(ternd):
    subject = unique_subject("multi")
    msg = make_message(subject, to="alice@example.org, bob@example.org")
    with smtplib.LMTP(*ternd.lmtp_addr, timeout=IO_TIMEOUT) as lmtp:
        code, _ = lmtp.ehlo("mta.test")
        assert code == 250
        assert lmtp.mail(SENDER)[0] == 250
        assert lmtp.rcpt("alice@example.org")[0] == 250
        code, text = lmtp.rcpt("nobody@example.org")
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
        assert lmtp.rcpt("bob@example.org")[0] == 250
        # smtplib's data() returns only the first LMTP reply; read the rest.
        first = lmtp.data(msg)
        second = lmtp.getreply()
        assert first[0] == 250 and second[0] == 250, (first, second)
        assert lmtp.noop()[0] == 250, "session must stay usable after the replies"
    assert_stored_once(ternd, "alice", "INBOX", subject, msg)
    assert_stored_once(ternd, "bob", "INBOX", subject, msg, rcpt="bob@example.org")


def test_raw_multi_recipient_replies_in_rcpt_order(ternd):
    subject = unique_subject("raw-multi")
    msg = make_message(subject)
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        rcpt, data = c.deliver(SENDER, ["bob@example.org", "ghost@example.org", "alice@example.org"], msg)
        assert [r.code for r in rcpt] == [250, 550, 250]
        assert rcpt[1].enhanced() == "5.1.1"
        assert [r.code for r in data] == [250, 250], data
        assert c.cmd("NOOP").code == 250
    assert_stored_once(ternd, "alice", "INBOX", subject, msg)
    assert_stored_once(ternd, "bob", "INBOX", subject, msg, rcpt="bob@example.org")


def test_same_recipient_twice_in_one_transaction(ternd):
    """Whatever the server answers per RCPT, each 250 after DATA must match a
    stored copy, and the mailbox must not gain copies it did not acknowledge."""
    subject = unique_subject("dup-rcpt")
    msg = make_message(subject)
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        rcpt, data = c.deliver(SENDER, ["alice@example.org", "alice@example.org"], msg)
    acked = sum(1 for r in data if r.code == 250)
    assert acked >= 1
    assert ternd.subjects("alice").count(subject) in (1, acked)


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks(ternd):
    subject = unique_subject("swaks")
    proc = subprocess.run(
        ["swaks", "--protocol", "LMTP", "--server", "127.0.0.1", "--port", str(ternd.lmtp_port),
         "--to", "alice@example.org", "--from", SENDER, "--helo", "swaks.test",
         "--header", f"Subject: {subject}", "--body", "sent by swaks", "--timeout", "20"],
        capture_output=True, timeout=60)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out + proc.stderr.decode(errors="replace")
    assert "LHLO swaks.test" in out
    raw = assert_stored_once(ternd, "alice", "INBOX", subject)
    assert b"sent by swaks" in raw


def test_dot_unstuffing(ternd):
    subject = unique_subject("dots")
    # Original lines ".", ".leading", "..two", "..." go out stuffed and must come back as sent.
    body = b".leading dot\r\n..two dots\r\n.\r\n...\r\n. \r\nlast line\r\n"
    msg = make_message(subject, body=body)
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        _, data = c.deliver(SENDER, ["alice@example.org"], msg)
        assert [r.code for r in data] == [250]
    raw = assert_stored_once(ternd, "alice", "INBOX", subject, msg)
    assert b"\n.leading dot\n..two dots\n.\n...\n" in normalize_eol(raw)


def test_8bit_body_kept_byte_for_byte(ternd):
    subject = unique_subject("8bit")
    body = "Grüße aus Köln — ünïcödé\r\n".encode() + bytes(range(0x80, 0x100)) + b"\r\n"
    msg = make_message(subject, body=body)
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}> BODY=8BITMIME", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        assert [r.code for r in c.data(msg, 1)] == [250]
    assert_stored_once(ternd, "alice", "INBOX", subject, msg)


def test_bdat_chunks_no_unstuffing(ternd):
    subject = unique_subject("bdat")
    msg = make_message(subject, body=b".a line starting with a dot\r\n..two\r\n.\r\nend\r\n")
    cut1, cut2 = 40, len(msg) - 3  # the second cut splits the final CRLF
    chunks = [msg[:cut1], msg[cut1:cut2], msg[cut2:]]
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        c.expect("RCPT TO:<bob@example.org>", 250)
        for chunk in chunks[:-1]:
            c.send(f"BDAT {len(chunk)}\r\n".encode() + chunk)
            r = c.reply()
            assert r.code == 250, r
        c.send(f"BDAT {len(chunks[-1])} LAST\r\n".encode() + chunks[-1])
        assert [r.code for r in c.replies(2)] == [250, 250]
        assert c.cmd("NOOP").code == 250
    assert_stored_once(ternd, "alice", "INBOX", subject, msg)
    assert_stored_once(ternd, "bob", "INBOX", subject, msg, rcpt="bob@example.org")


def test_bdat_zero_last_ends_message(ternd):
    subject = unique_subject("bdat0")
    msg = make_message(subject)
    with LmtpConn(ternd.lmtp_addr, timeout=5) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        c.send(f"BDAT {len(msg)}\r\n".encode() + msg)
        assert c.reply().code == 250
        assert c.cmd("BDAT 0 LAST").code == 250
    assert_stored_once(ternd, "alice", "INBOX", subject, msg)


def test_pipelined_bdat_transactions_in_one_write(ternd):
    subjects = [unique_subject(f"pipe{i}") for i in range(5)]
    msgs = [(s, make_message(s)) for s in subjects]
    batch = b"LHLO pipe.test\r\n"
    for _, m in msgs:
        batch += (f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<alice@example.org>\r\n"
                  f"RCPT TO:<nobody@example.org>\r\nBDAT {len(m)} LAST\r\n").encode() + m
    batch += b"QUIT\r\n"
    with LmtpConn(ternd.lmtp_addr) as c:
        c.send(batch)
        assert c.reply().code == 250  # LHLO
        for _ in msgs:
            codes = [r.code for r in c.replies(4)]
            assert codes == [250, 250, 550, 250], codes
        assert c.reply().code == 221
        c.expect_closed()
    subjects = ternd.subjects("alice")
    for s, m in msgs:
        assert subjects.count(s) == 1
        assert_stored_once(ternd, "alice", "INBOX", s, m)


def test_pipelined_data_transactions(ternd):
    """RFC 2920: commands up to DATA in one write; after 354 the body and the
    next transaction's commands in one write."""
    s1, s2 = unique_subject("pd1"), unique_subject("pd2")
    m1, m2 = make_message(s1), make_message(s2)
    with LmtpConn(ternd.lmtp_addr) as c:
        c.send(f"LHLO p.test\r\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<alice@example.org>\r\n"
               f"RCPT TO:<bob@example.org>\r\nDATA\r\n")
        assert [r.code for r in c.replies(5)] == [250, 250, 250, 250, 354]
        c.send(dot_stuff(m1) + b".\r\n" +
               f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n".encode())
        assert [r.code for r in c.replies(5)] == [250, 250, 250, 250, 354]
        c.send(dot_stuff(m2) + b".\r\nQUIT\r\n")
        assert [r.code for r in c.replies(2)] == [250, 221]
    assert_stored_once(ternd, "alice", "INBOX", s1, m1)
    assert_stored_once(ternd, "bob", "INBOX", s1, m1, rcpt="bob@example.org")
    assert_stored_once(ternd, "bob", "INBOX", s2, m2, rcpt="bob@example.org")
    assert s2 not in ternd.subjects("alice")


def test_rset_abandons_transaction(ternd):
    subject = unique_subject("rset")
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        c.expect("RSET", 250)
        assert c.cmd("DATA").code == 503
        _, data = c.deliver(SENDER, ["bob@example.org"], make_message(subject))
        assert [r.code for r in data] == [250]
    assert subject not in ternd.subjects("alice")
    assert ternd.subjects("bob").count(subject) == 1


def test_null_sender(ternd):
    subject = unique_subject("bounce")
    msg = make_message(subject, sender="MAILER-DAEMON@remote.test")
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect("MAIL FROM:<>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        assert [r.code for r in c.data(msg, 1)] == [250]
    raw = ternd.find("alice", "INBOX", subject)
    fields, _ = split_added_headers(raw)
    assert ("return-path", "<>") in [(n.lower(), v) for n, v in fields]


@pytest.mark.parametrize("rcpt,folder", [
    ("alice+Junk@example.org", "Junk"),
    ("alice+Trash@example.org", "Trash"),
    ("alice+NoSuchFolder@example.org", "INBOX"),
    ("alice+@example.org", "INBOX"),
])
def test_plus_folder_delivery(ternd, rcpt, folder):
    subject = unique_subject("plus")
    msg = make_message(subject, to=rcpt)
    with smtplib.LMTP(*ternd.lmtp_addr, timeout=IO_TIMEOUT) as lmtp:
        assert lmtp.sendmail(SENDER, [rcpt], msg) == {}
    for f in DEFAULT_FOLDERS:
        count = ternd.subjects("alice", f).count(subject)
        assert count == (1 if f == folder else 0), f"{subject} in {f}: {count} copies"
    assert_stored_once(ternd, "alice", folder, subject, msg, rcpt="alice")


@pytest.mark.parametrize("rcpt", ["ALICE@Example.ORG", "alice", "Alice@EXAMPLE.org"])
def test_user_name_forms_reach_alice(ternd, rcpt):
    subject = unique_subject("forms")
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        rcpts, data = c.deliver(SENDER, [rcpt], make_message(subject))
        assert [r.code for r in rcpts] == [250]
        assert [r.code for r in data] == [250]
    assert ternd.subjects("alice").count(subject) == 1


def test_foreign_domain_refused(ternd):
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        r = c.cmd("RCPT TO:<alice@other.test>")
        assert r.code == 550 and r.enhanced().startswith("5.1."), r
        c.expect("RCPT TO:<alice@example.org>", 250)


def test_any_domain_when_domains_empty(make_ternd):
    node = make_ternd(domains="")
    subject = unique_subject("anydomain")
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        rcpts, data = c.deliver(SENDER, ["alice@whatever.test", "bob@example.org"], make_message(subject))
        assert [r.code for r in rcpts] == [250, 250]
        assert [r.code for r in data] == [250, 250]
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        r = c.cmd("RCPT TO:<nobody@whatever.test>")
        assert r.code == 550 and r.enhanced() == "5.1.1", r
    assert node.subjects("alice").count(subject) == 1
    assert node.subjects("bob").count(subject) == 1


def test_unknown_user_550_511(ternd):
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        r = c.cmd("RCPT TO:<nobody@example.org>")
        assert r.code == 550 and r.enhanced() == "5.1.1", r


def test_size_parameter_over_limit(ternd):
    limit = 1024 * 1024
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        r = c.cmd(f"MAIL FROM:<{SENDER}> SIZE={limit + 1}")
        assert r.code == 552 and r.enhanced() == "5.3.4", r
        c.expect(f"MAIL FROM:<{SENDER}> SIZE={limit}", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)


def test_message_over_limit_552_per_recipient(ternd):
    big = unique_subject("big")
    small = unique_subject("small")
    body = (b"x" * 998 + b"\r\n") * 1100  # about 1.1 MB > 1M
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        _, data = c.deliver(SENDER, ["alice@example.org", "bob@example.org"], make_message(big, body=body))
        assert [r.code for r in data] == [552, 552], data
        assert all(r.enhanced() == "5.3.4" for r in data), data
        # The session goes on and the next message is fine.
        _, data = c.deliver(SENDER, ["alice@example.org"], make_message(small))
        assert [r.code for r in data] == [250]
    assert big not in ternd.subjects("alice")
    assert big not in ternd.subjects("bob")
    assert ternd.subjects("alice").count(small) == 1


def test_bdat_over_limit_552_per_recipient(ternd):
    big = unique_subject("bigbdat")
    msg = make_message(big, body=b"y" * (700 * 1024))
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        c.expect("RCPT TO:<bob@example.org>", 250)
        c.send(f"BDAT {len(msg)}\r\n".encode() + msg)
        first = c.reply()
        assert first.code == 250, first  # 700k so far: under the 1M limit
        c.send(f"BDAT {len(msg)} LAST\r\n".encode() + msg)
        replies = c.replies(2)
        assert [(r.code, r.enhanced()) for r in replies] == [(552, "5.3.4")] * 2, replies
        assert c.cmd("NOOP").code == 250
    assert big not in ternd.subjects("alice")
    assert big not in ternd.subjects("bob")


def test_message_just_under_limit(ternd):
    subject = unique_subject("fits")
    head = make_message(subject, body=b"")
    # The limit is on the message as received, not counting the added headers.
    room = 1024 * 1024 - len(head) - 100
    line = b"z" * 76 + b"\r\n"
    body = line * (room // len(line))
    msg = head + body
    assert 1024 * 1024 - 200 < len(msg) < 1024 * 1024
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        _, data = c.deliver(SENDER, ["alice@example.org"], msg)
        assert [r.code for r in data] == [250]
    stored = [m for m in ternd.messages("alice") if m.get("subject") == subject]
    assert len(stored) == 1 and stored[0]["size"] >= len(msg)
    assert_stored_once(ternd, "alice", "INBOX", subject, msg)


def test_many_messages_listed_with_distinct_uids(ternd):
    subjects = [unique_subject("seq") for _ in range(20)]
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        for s in subjects:
            _, data = c.deliver(SENDER, ["alice@example.org"], make_message(s))
            assert [r.code for r in data] == [250]
    msgs = ternd.messages("alice")
    assert [m["subject"] for m in msgs] == subjects, "messages must be listed in delivery (UID) order"
    uids = [m["uid"] for m in msgs]
    assert uids == sorted(uids) and len(set(uids)) == len(uids)
    for m in msgs:
        assert isinstance(m["flags"], list) and "\\Seen" not in m["flags"]
        assert m["size"] > 0 and m["date"]


def test_quit(ternd):
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        r = c.cmd("QUIT")
        assert r.code == 221 and r.enhanced().startswith("2."), r
        c.expect_closed()
