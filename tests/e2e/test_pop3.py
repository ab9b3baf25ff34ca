"""POP3 end to end with Python's poplib and a raw socket: every command,
AUTH PLAIN, UIDL stability, DELE applied only at QUIT, the IN-USE lock, failed
logins (reply, delay, the fail2ban log line), TOP, byte-stuffing and bad
commands. Mail arrives over LMTP first, as it would in production."""

import base64
import imaplib
import poplib
import re
import socket
import time

import pytest

from ternlib import (IO_TIMEOUT, PASSWORD, LmtpConn, free_port, make_message, unique_subject,
                     wait_for)

SENDER = "sender@remote.test"
FAIL_DELAY_MS = 200


def pop3_node(make_ternd, host="127.0.0.1", **settings):
    return make_ternd(pop3_listen=f"{host}:{free_port()}", **settings)


@pytest.fixture
def node(make_ternd):
    """A node with POP3 on a free loopback port, a short failure delay and
    users alice and bob."""
    return pop3_node(make_ternd, auth_failure_delay=f"{FAIL_DELAY_MS}ms", max_bad_commands=3)


def pop3_addr(node):
    host, port = node.settings["pop3_listen"].rsplit(":", 1)
    return host, int(port)


def deliver(node, user, subject=None, body="Hello from the Tern test suite.\r\n"):
    """Delivers one message over LMTP; returns (subject, raw as stored)."""
    subject = subject or unique_subject("pop3")
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        _, replies = c.deliver(SENDER, [f"{user}@example.org"],
                               make_message(subject, body=body, to=f"{user}@example.org"))
        assert [r.code for r in replies] == [250], replies
    return subject, node.find(user, "INBOX", subject)


def login(node, user="alice", password=PASSWORD):
    p = poplib.POP3(*pop3_addr(node), timeout=IO_TIMEOUT)
    p.user(user)
    p.pass_(password)
    return p


def uid_of(node, user, subject):
    found = [m for m in node.messages(user) if m.get("subject") == subject]
    assert len(found) == 1
    return found[0]["uid"]


def uidvalidity(node, user):
    folders = node.ctl("mailbox", "folders", user, as_json=True)
    if isinstance(folders, dict):
        folders = next(v for v in folders.values() if isinstance(v, list))
    return next(f["uidvalidity"] for f in folders if f["name"] == "INBOX")


class Raw:
    """A raw POP3 client: every read has a deadline."""

    def __init__(self, node):
        self.sock = socket.create_connection(pop3_addr(node), timeout=IO_TIMEOUT)
        self.buf = b""
        self.greeting = self.line()

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed (have {self.buf!r})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.line()

    def multiline(self):
        """Lines up to the terminating '.', still byte-stuffed."""
        lines = []
        while True:
            line = self.line()
            if line == ".":
                return lines
            lines.append(line)

    def closed(self):
        """True once the server has closed the connection."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True


def plain(user, password, authzid=""):
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


# ------------------------------------------------------------------ session

def test_greeting_and_capa(node):
    p = poplib.POP3(*pop3_addr(node), timeout=IO_TIMEOUT)
    assert p.getwelcome() == b"+OK Tern POP3 ready"
    caps = p.capa()
    for cap in ("TOP", "USER", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert cap in caps, caps
    assert caps["SASL"] == ["PLAIN"]
    assert caps["IMPLEMENTATION"] == ["Tern"]
    assert "STLS" not in caps, "STLS must not be offered without TLS"
    p.quit()


def test_stat_list_retr_match_the_store(node):
    s1, raw1 = deliver(node, "alice")
    s2, raw2 = deliver(node, "alice", body="Second body\r\nline two\r\n")
    deliver(node, "bob")
    p = login(node)
    assert p.stat() == (2, len(raw1) + len(raw2))
    resp, listing, _ = p.list()
    assert resp.startswith(b"+OK")
    assert listing == [f"1 {len(raw1)}".encode(), f"2 {len(raw2)}".encode()]
    assert p.list(2) == f"+OK 2 {len(raw2)}".encode()
    resp, lines, octets = p.retr(1)
    assert resp.startswith(b"+OK")
    assert b"\r\n".join(lines) + b"\r\n" == raw1
    resp, lines, _ = p.retr(2)
    assert b"\r\n".join(lines) + b"\r\n" == raw2
    assert p.noop().startswith(b"+OK")
    assert p.quit().startswith(b"+OK")
    # RETR marks the message read, as IMAP clients will see it
    flags = {m["subject"]: m["flags"] for m in node.messages("alice")}
    assert "\\Seen" in flags[s1] and "\\Seen" in flags[s2]


def test_bad_message_numbers(node):
    deliver(node, "alice")
    p = login(node)
    for arg in ("0", "2", "-1", "abc", "99999999999999999999999"):
        with pytest.raises(poplib.error_proto, match="No such message"):
            p.retr(arg)
    with pytest.raises(poplib.error_proto, match="No such message"):
        p.list(5)
    p.quit()


def test_top_sends_header_and_n_lines(node):
    body = "line 1\r\nline 2\r\nline 3\r\nline 4\r\n"
    _, raw = deliver(node, "alice", body=body)
    header = raw.split(b"\r\n\r\n", 1)[0]
    p = login(node)
    resp, lines, _ = p.top(1, 2)
    assert resp.startswith(b"+OK")
    assert b"\r\n".join(lines) == header + b"\r\n\r\nline 1\r\nline 2"
    _, lines, _ = p.top(1, 0)
    assert b"\r\n".join(lines) == header + b"\r\n"
    _, lines, _ = p.top(1, 100)
    assert b"\r\n".join(lines) + b"\r\n" == raw
    with pytest.raises(poplib.error_proto):
        p._shortcmd("TOP 1 x")
    p.quit()
    # TOP is not a read: no \Seen
    assert node.messages("alice")[0]["flags"] == []


def test_byte_stuffing(node):
    body = ".starts with a dot\r\n..two dots\r\n.\r\nend\r\n"
    _, raw = deliver(node, "alice", body=body)
    c = Raw(node)
    assert c.cmd("USER alice").startswith("+OK")
    assert c.cmd(f"PASS {PASSWORD}").startswith("+OK")
    assert c.cmd("RETR 1").startswith("+OK")
    wire = c.multiline()
    assert "..starts with a dot" in wire
    assert "...two dots" in wire
    assert ".." in wire and "." not in wire, "a lone '.' line must go out as '..'"
    c.cmd("QUIT")
    c.close()
    p = login(node)
    _, lines, _ = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == raw, "poplib must read back the stored bytes"
    p.quit()


def test_uidl_stable_across_sessions(node):
    s1, _ = deliver(node, "alice")
    s2, _ = deliver(node, "alice")
    p = login(node)
    _, first, _ = p.uidl()
    one = p.uidl(2)
    p.quit()
    v = uidvalidity(node, "alice")
    expected = [f"1 {v}.{uid_of(node, 'alice', s1)}".encode(),
                f"2 {v}.{uid_of(node, 'alice', s2)}".encode()]
    assert first == expected
    assert one == b"+OK " + expected[1]
    # a new message and a deleted one renumber messages, never UIDLs
    deliver(node, "alice")
    p = login(node)
    p.dele(1)
    p.quit()
    p = login(node)
    _, again, _ = p.uidl()
    p.quit()
    assert again[0] == b"1 " + expected[1].split(b" ")[1]
    assert len(again) == 2


def test_dele_applies_at_quit_only(node):
    s1, _ = deliver(node, "alice")
    s2, _ = deliver(node, "alice")
    p = login(node)
    assert p.dele(1).startswith(b"+OK")
    assert p.stat()[0] == 1
    assert [l.split()[0] for l in p.list()[1]] == [b"2"]
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.retr(1)
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.dele(1)
    # a connection dropped without QUIT deletes nothing (RFC 1939 §6)
    p.close()   # no QUIT
    wait_for(lambda: login(node).quit(), IO_TIMEOUT, "the dropped session to release the maildrop")
    assert sorted(node.subjects("alice")) == sorted([s1, s2])
    p = login(node)
    p.dele(1)
    p.rset()
    assert p.stat()[0] == 2, "RSET must unmark"
    p.dele(2)
    assert b"1 messages deleted" in p.quit()
    assert node.subjects("alice") == [s1]


def test_seen_is_set_at_quit_with_the_deletions(make_ternd):
    """RETR marks \\Seen in the UPDATE state, like DELE (and like Dovecot):
    a dropped connection marks nothing; QUIT marks the retrieved messages
    that were not deleted, also when IMAP expunged one of them meanwhile."""
    node = pop3_node(make_ternd, imap_listen=f"127.0.0.1:{free_port()}")
    s1, _ = deliver(node, "alice")
    s2, _ = deliver(node, "alice")
    s3, _ = deliver(node, "alice")
    p = login(node)
    p.retr(1)
    p.close()   # no QUIT
    wait_for(lambda: login(node).quit(), IO_TIMEOUT, "the dropped session to release the maildrop")
    flags = {m["subject"]: m["flags"] for m in node.messages("alice")}
    assert "\\Seen" not in flags[s1], "a dropped session set \\Seen"
    p = login(node)
    for n in (1, 2, 3):
        p.retr(n)
    p.dele(2)
    host, port = node.settings["imap_listen"].rsplit(":", 1)
    with imaplib.IMAP4(host, int(port), timeout=IO_TIMEOUT) as m:
        m.login("alice", PASSWORD)
        m.select("INBOX")
        assert m.store("3", "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert m.expunge()[0] == "OK"
    assert b"1 messages deleted" in p.quit()
    flags = {m["subject"]: m["flags"] for m in node.messages("alice")}
    assert sorted(flags) == [s1], flags
    assert "\\Seen" in flags[s1]


def test_second_session_gets_in_use(node):
    deliver(node, "alice")
    p = login(node)
    q = poplib.POP3(*pop3_addr(node), timeout=IO_TIMEOUT)
    q.user("alice")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\] Mailbox is locked by another POP3 session"):
        q.pass_(PASSWORD)
    # bob is independent
    login(node, "bob").quit()
    p.quit()
    q.user("alice")
    assert q.pass_(PASSWORD).startswith(b"+OK")
    assert q.stat()[0] == 1
    q.quit()


def test_wrong_password_is_delayed_and_logged(node):
    p = poplib.POP3(*pop3_addr(node), timeout=IO_TIMEOUT)
    p.user("alice")
    started = time.monotonic()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.pass_("Not-The-Password-42")
    assert time.monotonic() - started >= FAIL_DELAY_MS / 1000 * 0.9
    # the session stays in AUTHORIZATION and can try again
    p.user("Alice@Example.org")
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        login(node, "nobody")
    log = node.stderr_text()
    assert re.search(r"auth failed: user=<alice>, method=PLAIN, rip=127\.0\.0\.1, "
                     r"lip=127\.0\.0\.1, reason=password mismatch", log), log
    assert re.search(r"auth failed: user=<nobody>, method=PLAIN, rip=127\.0\.0\.1, "
                     r"lip=\S+, reason=unknown user", log), log
    assert re.search(r"login: user=<alice>, method=PLAIN, rip=127\.0\.0\.1, proto=pop3", log), log
    assert "Not-The-Password-42" not in log, "a password must never reach the log"


def test_failure_delay_grows(node):
    times = []
    for _ in range(3):
        p = poplib.POP3(*pop3_addr(node), timeout=IO_TIMEOUT)
        p.user("bob")
        started = time.monotonic()
        with pytest.raises(poplib.error_proto):
            p.pass_("wrong")
        times.append(time.monotonic() - started)
        p.close()
    assert times[2] >= 4 * FAIL_DELAY_MS / 1000 * 0.9, times


def test_auth_plain(node):
    deliver(node, "alice")
    c = Raw(node)
    assert c.cmd("AUTH").startswith("+OK")
    assert c.multiline() == ["PLAIN"]
    assert c.cmd("AUTH CRAM-MD5").startswith("-ERR")
    # no initial response: "+ " then the response (RFC 5034)
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd("*").startswith("-ERR")
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd("not base64!").startswith("-ERR")
    assert c.cmd("AUTH PLAIN " + plain("alice", PASSWORD, authzid="bob")).startswith("-ERR")
    assert c.cmd("AUTH PLAIN") == "+ "
    assert c.cmd(plain("alice", PASSWORD)).startswith("+OK")
    assert c.cmd("STAT").startswith("+OK 1 ")
    assert c.cmd("QUIT").startswith("+OK")
    c.close()
    c = Raw(node)
    assert c.cmd("AUTH PLAIN " + plain("alice@example.org", PASSWORD, "alice@example.org")) \
        .startswith("+OK")
    c.cmd("QUIT")
    c.close()
    c = Raw(node)
    assert c.cmd("auth plain " + plain("alice", "nope")).startswith("-ERR [AUTH]")
    c.close()


def test_pipelined_session(node):
    deliver(node, "alice")
    c = Raw(node)
    c.send(f"USER alice\r\nPASS {PASSWORD}\r\nSTAT\r\nUIDL\r\nNOOP\r\nQUIT\r\n")
    assert c.line().startswith("+OK")
    assert c.line().startswith("+OK Logged in")
    assert c.line().startswith("+OK 1 ")
    assert c.line().startswith("+OK")
    assert len(c.multiline()) == 1
    assert c.line() == "+OK"
    assert c.line().startswith("+OK")
    assert c.closed()


def test_other_commands(node):
    c = Raw(node)
    assert c.cmd("APOP alice 0123456789abcdef0123456789abcdef").startswith("-ERR")
    assert c.cmd("STLS").startswith("-ERR")
    assert c.cmd("PASS x").startswith("-ERR")       # no USER yet (a bad command)
    assert c.cmd("USER alice").startswith("+OK")
    assert c.cmd(f"pass {PASSWORD}").startswith("+OK")  # keywords are case-insensitive
    assert c.cmd("USER alice").startswith("-ERR")   # wrong state
    assert c.cmd("QUIT").startswith("+OK")
    assert c.closed()


def test_mailbox_on_another_node(node):
    """A node without cluster_listen cannot proxy: a user homed elsewhere
    gets a temporary error naming the home (docs/cluster.md covers the
    proxied case)."""
    node.ctl("user", "add", "carol", "--home", "node2", "--password-stdin",
             input=PASSWORD + "\n")
    with pytest.raises(poplib.error_proto,
                       match=r"\[SYS/TEMP\] Mailbox is on node node2, which cannot be reached"):
        login(node, "carol")


def test_bad_commands_close_the_connection(node):
    c = Raw(node)
    assert c.cmd("FOO") == "-ERR Unknown command"
    assert c.cmd("STAT").startswith("-ERR")         # not logged in
    assert c.cmd("NOOP").startswith("-ERR")
    assert c.line() == "-ERR Too many bad commands"
    assert c.closed()
    # a good command in between resets the count
    c = Raw(node)
    for _ in range(4):
        assert c.cmd("FOO").startswith("-ERR")
        assert c.cmd("CAPA").startswith("+OK")
        c.multiline()
    c.cmd("QUIT")
    c.close()


def test_hostile_lines(node):
    c = Raw(node)
    c.send(b"USER " + b"a" * 100000 + b"\r\n")
    assert c.line() == "-ERR Line too long"
    c.send(b"US\0ER x\r\n")
    assert c.line().startswith("-ERR")
    assert c.cmd("CAPA").startswith("+OK"), "the session must stay in step after bad lines"
    c.multiline()
    c.cmd("QUIT")
    c.close()


def test_shutdown_closes_sessions_without_deleting(node):
    s1, _ = deliver(node, "alice")
    c = Raw(node)
    assert c.cmd("USER alice").startswith("+OK")
    assert c.cmd(f"PASS {PASSWORD}").startswith("+OK")
    assert c.cmd("DELE 1").startswith("+OK")
    # a second client is waiting out a failed login's delay
    d = Raw(node)
    d.send("USER bob\r\nPASS Not-The-Password-42\r\n")
    assert d.line().startswith("+OK")
    assert node.terminate() == 0
    assert c.line().startswith("-ERR [SYS/TEMP]")
    assert c.closed()
    assert d.closed()
    node.start()
    assert node.subjects("alice") == [s1], "no QUIT, so DELE must not have been applied"


def non_loopback_ipv4():
    """This host's outward IPv4 address (a UDP connect sends nothing), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.254", 9))
        except OSError:
            return None
        addr = s.getsockname()[0]
    return None if addr.startswith("127.") else addr


def test_plaintext_refused_off_loopback(make_ternd):
    addr = non_loopback_ipv4()
    if addr is None:
        pytest.skip("no non-loopback IPv4 address to listen on")
    node = pop3_node(make_ternd, host=addr)
    c = Raw(node)
    refused = "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections"
    assert c.cmd("USER alice") == refused
    assert c.cmd("AUTH PLAIN " + plain("alice", PASSWORD)) == refused
    assert c.cmd("CAPA").startswith("+OK")
    caps = c.multiline()
    assert "USER" not in caps and not any(l.startswith("SASL") for l in caps), caps
    assert c.cmd("AUTH").startswith("+OK")
    assert c.multiline() == []
    c.cmd("QUIT")
    c.close()
