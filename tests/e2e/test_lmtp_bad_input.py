"""Hostile and malformed LMTP input: every case must get the documented reply,
leave the session usable (or close it with 421 where documented), store
nothing it should not, and never take the server down."""

import pytest

from ternlib import LmtpConn, make_message, unique_subject, dot_stuff

SENDER = "sender@remote.test"


def assert_alive(node):
    """A fresh connection still gets a greeting and can deliver."""
    subject = unique_subject("alive")
    with LmtpConn(node.lmtp_addr) as c:
        assert c.greeting.code == 220
        c.lhlo()
        _, data = c.deliver(SENDER, ["alice@example.org"], make_message(subject))
        assert [r.code for r in data] == [250]
    assert node.subjects("alice").count(subject) == 1


@pytest.mark.parametrize("line", ["HELO client.test", "EHLO client.test"])
def test_helo_ehlo_refused(ternd, line):
    with LmtpConn(ternd.lmtp_addr) as c:
        r = c.cmd(line)
        assert r.code == 500, r
        c.lhlo()  # the session continues
        c.expect(f"MAIL FROM:<{SENDER}>", 250)


def test_mail_before_lhlo(ternd):
    with LmtpConn(ternd.lmtp_addr) as c:
        r = c.cmd(f"MAIL FROM:<{SENDER}>")
        assert (r.code, r.enhanced()) == (503, "5.5.1"), r
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)


def test_rcpt_before_mail(ternd):
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        r = c.cmd("RCPT TO:<alice@example.org>")
        assert (r.code, r.enhanced()) == (503, "5.5.1"), r
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)


def test_data_before_rcpt(ternd):
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        r = c.cmd("DATA")
        assert (r.code, r.enhanced()) == (503, "5.5.1"), r
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        r = c.cmd("DATA")
        assert (r.code, r.enhanced()) == (503, "5.5.1"), r
        # Only refused recipients: still no valid recipient for DATA.
        assert c.cmd("RCPT TO:<nobody@example.org>").code == 550
        r = c.cmd("DATA")
        assert r.code == 503, r
        c.expect("RCPT TO:<alice@example.org>", 250)
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
        assert c.reply().code == 250


def test_bdat_before_rcpt_keeps_stream_in_step(ternd):
    """A refused BDAT's chunk must still be read and dropped, not run as commands."""
    chunk = b"NOOP\r\nRSET\r\n"
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.send(f"BDAT {len(chunk)}\r\n".encode() + chunk)
        r = c.reply()
        assert r.code == 503, r
        r = c.cmd("NOOP")
        assert r.code == 250, r  # exactly one reply came before: the chunk was not parsed


def test_mail_twice(ternd):
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        r = c.cmd(f"MAIL FROM:<{SENDER}>")
        assert r.code == 503, r


@pytest.mark.parametrize("line,codes", [
    ("FOO bar", (500,)),
    ("", (500, 501)),
    ("MAIL", (501, 500)),
    ("MAIL FROM:", (501,)),
    ("MAIL FROM:sender@remote.test>", (501,)),
    ("MAIL FROM:<sender@remote.test> SIZE=abc", (501, 555)),
    ("MAIL FROM:<sender@remote.test> SIZE=99999999999999999999999999", (501, 552, 555)),
    ("MAIL FROM:<sender@remote.test> FROBNICATE=yes", (501, 555)),
    ("MAIL FROM:<sender@remote.test\x00evil>", (500, 501)),
    ("\x00\x01\x02\xff\xfe", (500, 501)),
    ("LHLO", (501,)),
])
def test_malformed_command_session_continues(ternd, line, codes):
    with LmtpConn(ternd.lmtp_addr) as c:
        if not line.startswith("LHLO"):
            c.lhlo()
        c.send(line.encode("latin-1") + b"\r\n")
        r = c.reply()
        assert r.code in codes, f"{line!r}: {r!r}"
        assert r.enhanced().startswith("5.") or r.code == 500, r
        if line.startswith("LHLO"):
            c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
    assert_alive(ternd)


@pytest.mark.parametrize("line", [
    "RCPT TO:",
    "RCPT TO:alice@example.org",
    "RCPT TO:<>",
    "RCPT TO:<alice@example.org",
    "RCPT TO:<../../etc/passwd@example.org>",
    "RCPT TO:<alice/../bob@example.org>",
    "RCPT TO:<" + "a" * 300 + "@example.org>",
    "RCPT TO:<alice@example.org> NOTIFY=BOGUS",
])
def test_bad_rcpt_refused(ternd, line):
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        r = c.cmd(line)
        assert 500 <= r.code < 600, f"{line!r}: {r!r}"
        c.expect("RCPT TO:<alice@example.org>", 250)
    assert_alive(ternd)


def test_bad_bdat_argument(ternd):
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        for line in ("BDAT", "BDAT x", "BDAT -5", "BDAT 10 FIRST"):
            r = c.cmd(line)
            assert r.code == 501, f"{line!r}: {r!r}"
        c.expect("NOOP", 250)


def test_line_over_max_line_length_421_and_close(make_ternd):
    node = make_ternd(max_line_length=1024)
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        c.send(b"NOOP " + b"x" * 4000 + b"\r\n")
        r = c.reply()
        assert r.code == 421, r
        c.expect_closed()
    # A line just under the limit is fine.
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        r = c.cmd("NOOP " + "x" * 900)
        assert r.code == 250, r
    assert_alive(node)


def test_endless_line_without_newline_421(make_ternd):
    """A client that never sends LF must not make the server buffer forever."""
    node = make_ternd(max_line_length=1024)
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        c.send(b"A" * 2000)  # over the limit, no LF, small enough to be read at once
        data = c.expect_closed()
        assert data.startswith(b"421"), data
    assert_alive(node)


def test_too_many_bad_commands_421_and_close(make_ternd):
    node = make_ternd(max_bad_commands=3)
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        codes = []
        for _ in range(5):
            try:
                r = c.cmd("XYZZY")
            except AssertionError as exc:  # closed without a 421
                raise AssertionError(f"connection closed after replies {codes}: {exc}")
            codes.append(r.code)
            if r.code == 421:
                break
        assert codes[-1] == 421, codes
        assert len(codes) in (3, 4), f"421 after {len(codes)} bad commands with max_bad_commands = 3"
        assert all(code in (500, 501) for code in codes[:-1]), codes
        c.expect_closed()
    assert_alive(node)


def test_bad_commands_below_limit_keep_session(make_ternd):
    node = make_ternd(max_bad_commands=3)
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        for _ in range(2):
            assert c.cmd("XYZZY").code == 500
        c.expect("NOOP", 250)
        subject = unique_subject("after-bad")
        _, data = c.deliver(SENDER, ["alice@example.org"], make_message(subject))
        assert [r.code for r in data] == [250]
    assert node.subjects("alice").count(subject) == 1


def test_too_many_recipients(make_ternd):
    node = make_ternd(max_recipients=100)  # the lowest allowed (RFC 5321 4.5.3.1.8)
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        for i in range(100):
            c.expect(f"RCPT TO:<alice+r{i}@example.org>", 250)
        r = c.cmd("RCPT TO:<bob@example.org>")
        assert r.code in (452, 552), r
        c.expect("RSET", 250)
        subject = unique_subject("maxrcpt")
        _, data = c.deliver(SENDER, ["bob@example.org"], make_message(subject))
        assert [x.code for x in data] == [250]
    assert node.subjects("bob") == [subject]
    assert node.subjects("alice") == []


@pytest.mark.parametrize("body", [
    b"a bare LF\nin the middle\r\n",
    b"a bare CR\rin the middle\r\n",
    b"ends with a bare LF\n",
    b"\n\n\n",
])
def test_bare_cr_or_lf_in_body(ternd, body):
    """Sloppy clients send bare LF or CR; the message is stored (or refused)
    and the server goes on serving."""
    subject = unique_subject("bare")
    with LmtpConn(ternd.lmtp_addr, timeout=5) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        assert c.cmd("DATA").code == 354
        c.send(make_message(subject, body=body) + b"\r\n.\r\n")
        r = c.reply()
        assert r.code in (250, 550, 554), r
        c.expect("NOOP", 250)
    assert ternd.subjects("alice").count(subject) == (1 if r.code == 250 else 0)
    assert_alive(ternd)


def test_command_dripped_one_byte_at_a_time(ternd):
    subject = unique_subject("drip")
    script = (b"LHLO drip.test\r\nMAIL FROM:<" + SENDER.encode() + b">\r\n"
              b"RCPT TO:<alice@example.org>\r\n")
    with LmtpConn(ternd.lmtp_addr) as c:
        for i in range(len(script)):
            c.send(script[i:i + 1])
        assert [r.code for r in c.replies(3)] == [250, 250, 250]
        assert c.cmd("DATA").code == 354
        body = dot_stuff(make_message(subject)) + b".\r\n"
        for i in range(len(body)):
            c.send(body[i:i + 1])
        assert c.reply().code == 250
    assert ternd.subjects("alice").count(subject) == 1


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r"])
def test_no_smuggling_through_bare_lf_dot(ternd, fake_end):
    """Only CRLF.CRLF ends DATA. Text after a bare-LF dot must not become a
    second transaction (SMTP smuggling)."""
    outer = unique_subject("outer")
    smuggled = unique_subject("smuggled")
    inner = (f"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
             f"Subject: {smuggled}\r\n\r\nsmuggled\r\n").encode()
    msg = make_message(outer, body=b"first part" + fake_end + inner)
    with LmtpConn(ternd.lmtp_addr, timeout=5) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        assert c.cmd("DATA").code == 354
        c.send(msg + b"\r\n.\r\n")
        r = c.reply()
        # Accepting the whole thing as one message, or refusing it, are both fine.
        assert r.code in (250, 550, 554), r
        c.expect("NOOP", 250)
    assert smuggled not in ternd.subjects("bob")
    assert smuggled not in ternd.subjects("alice")
    if r.code == 250:
        assert ternd.subjects("alice").count(outer) == 1


def test_disconnect_mid_data_stores_nothing(ternd):
    subject = unique_subject("cut")
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        assert c.cmd("DATA").code == 354
        c.send(make_message(subject)[:80])
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        c.send(b"BDAT 1000\r\nonly a few bytes of a promised 1000")
    assert_alive(ternd)
    assert subject not in ternd.subjects("alice")
    assert len(ternd.messages("alice")) == 1  # the one from assert_alive


def test_many_idle_connections_do_not_block_delivery(ternd):
    conns = [LmtpConn(ternd.lmtp_addr) for _ in range(50)]
    try:
        for c in conns[::2]:
            c.send(b"LHLO half")  # incomplete line, left hanging
        assert_alive(ternd)
    finally:
        for c in conns:
            c.close()
