"""Hostile connection patterns (issue 7, items 4 and 8): idle pre-login
connections must not take LMTP's slots; one address may hold only
max_preauth_per_address pre-login connections; login_timeout counts from
connect and is not reset by a trickle of bytes; a client that hangs up while
its connection is paused (the failure delay after a bad login) gives its slot
back at once; and running out of descriptors makes the listener back off
instead of spinning and flooding the log."""

import os
import re
import resource
import socket
import ssl
import subprocess
import time

import pytest

from ternlib import IO_TIMEOUT, PASSWORD, LmtpConn, free_port, make_message, unique_subject, wait_for

SENDER = "sender@remote.test"
IMAP_BUSY = "* BYE [UNAVAILABLE]"
POP3_BUSY = "-ERR [SYS/TEMP]"
GREETING = {"imap": "* OK", "pop3": "+OK"}
BUSY = {"imap": IMAP_BUSY, "pop3": POP3_BUSY}


def node_with(make_ternd, **settings):
    """A node with IMAP and POP3 on free loopback ports."""
    settings.setdefault("auth_failure_delay", "50ms")
    return make_ternd(imap_listen=f"127.0.0.1:{free_port()}",
                      pop3_listen=f"127.0.0.1:{free_port()}", **settings)


def addr_of(node, proto):
    host, port = node.settings[f"{proto}_listen"].rsplit(":", 1)
    return host, int(port)


class Client:
    """A raw line client with deadlines, optionally bound to a source address
    (all of 127/8 is loopback)."""

    def __init__(self, addr, source="127.0.0.1", timeout=IO_TIMEOUT):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no complete line within the deadline (have {self.buf!r})")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionError(f"connection closed (have {self.buf!r})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def closed_within(self, timeout):
        """Reads until the server closes; returns all it sent since the
        last line read, or None if it still had not closed after timeout
        seconds (what arrived meanwhile is kept for the next call)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                got, self.buf = self.buf, b""
                return got
            self.buf += chunk


def greeted(node, proto, source="127.0.0.1"):
    """A connection whose first line is the greeting (asserted)."""
    c = Client(addr_of(node, proto), source)
    first = c.line()
    assert first.startswith(GREETING[proto]), f"{proto} from {source}: expected a greeting, got {first!r}"
    return c


def refused(node, proto, source="127.0.0.1"):
    """Asserts the server answers with the busy reply and closes."""
    c = Client(addr_of(node, proto), source)
    try:
        first = c.line()
        assert first.startswith(BUSY[proto]), f"{proto} from {source}: expected {BUSY[proto]!r}, got {first!r}"
        assert c.closed_within(IO_TIMEOUT) is not None, "the refused connection was not closed"
    finally:
        c.close()
    return first


def log_in(c, proto, n="a1"):
    if proto == "imap":
        c.send(f'{n} LOGIN alice "{PASSWORD}"\r\n')
        while True:
            line = c.line()
            if line.startswith(n + " "):
                assert line.startswith(f"{n} OK"), line
                return
    c.send("USER alice\r\n")
    assert c.line().startswith("+OK")
    c.send(f"PASS {PASSWORD}\r\n")
    line = c.line()
    assert line.startswith("+OK"), line


def deliver_one(node, user="alice"):
    subject = unique_subject("slots")
    with LmtpConn(node.lmtp_addr) as c:
        assert c.greeting.code == 220, c.greeting
        c.lhlo()
        _, replies = c.deliver(SENDER, [f"{user}@example.org"],
                               make_message(subject, to=f"{user}@example.org"))
        assert [r.code for r in replies] == [250], replies
    return subject


def wait_log(node, pattern, timeout=5):
    """The node's log has a line matching pattern within timeout s (a line
    is written after the reply it tells of has gone out)."""
    wait_for(lambda: re.search(pattern, node.stderr_text()), timeout,
             f"a log line matching {pattern!r}")


def close_all(conns):
    for c in conns:
        c.close()


# ------------------------------------------------------------ budgets per class

def test_idle_client_connections_cannot_take_lmtp_slots(make_ternd):
    node = node_with(make_ternd, max_connections=300, max_preauth_per_address=1000)
    conns = []
    try:
        for i in range(300):
            conns.append(greeted(node, "imap" if i % 2 == 0 else "pop3"))
        subject = deliver_one(node)
        assert subject in node.subjects("alice")
        refused(node, "imap")
        refused(node, "pop3")
    finally:
        close_all(conns)
    # the log line is written after the refusal went out: wait for it
    wait_log(node, r"rip=127\.0\.0\.1: connection refused: max_connections \(300\) reached")
    # the slots come back when the clients leave
    wait_for(lambda: greeted(node, "imap").close() is None, 5, "an IMAP slot after the clients left",
             retry_on=(AssertionError, OSError))


def test_lmtp_has_its_own_budget(make_ternd):
    node = node_with(make_ternd, lmtp_max_connections=2)
    held = [LmtpConn(node.lmtp_addr) for _ in range(2)]
    try:
        assert all(c.greeting.code == 220 for c in held)
        with LmtpConn(node.lmtp_addr) as c:
            assert (c.greeting.code, c.greeting.enhanced()) == (421, "4.3.2"), c.greeting
        # clients are counted apart
        greeted(node, "imap").close()
    finally:
        close_all(held)
    wait_log(node, r"connection refused: lmtp_max_connections \(2\) reached")


# ------------------------------------------------------------ pre-login per address

@pytest.mark.parametrize("proto", ["imap", "pop3"])
def test_preauth_connections_per_address(make_ternd, proto):
    node = node_with(make_ternd, max_preauth_per_address=5)
    conns = []
    try:
        conns = [greeted(node, proto) for _ in range(5)]
        refused(node, proto)
        conns.append(greeted(node, proto, source="127.0.0.2"))
        # a login gives the address's pre-login slot back
        log_in(conns[0], proto)
        conns.append(greeted(node, proto))
        refused(node, proto)
        # and so does leaving (the close is noticed asynchronously)
        conns[1].close()
        conns.append(wait_for(lambda: greeted(node, proto), 5, "a pre-login slot after a close",
                              retry_on=(AssertionError, OSError)))
    finally:
        close_all(conns)
    wait_log(node, rf"{proto}: rip=127\.0\.0\.1: connection refused: max_preauth_per_address \(5\) reached")


# ------------------------------------------------------------ login_timeout

@pytest.mark.parametrize("proto", ["imap", "pop3"])
def test_login_timeout_is_not_reset_by_input(make_ternd, proto):
    node = node_with(make_ternd, login_timeout="2s", idle_timeout="1h")
    c = greeted(node, proto)
    started = time.monotonic()
    got = None
    try:
        # one byte every 0.5 s, never a whole line: each byte would reset an idle timer
        while time.monotonic() - started < 6:
            try:
                c.send(b"x")
            except OSError:
                got = c.closed_within(1)
                break
            got = c.closed_within(0.5)
            if got is not None:
                break
        elapsed = time.monotonic() - started
    finally:
        c.close()
    assert got is not None, "the trickling client was never closed"
    assert 1.5 <= elapsed < 4, f"closed after {elapsed:.2f}s, expected about 2s"
    reply = {"imap": b"* BYE Login timeout\r\n", "pop3": b"-ERR Login timeout\r\n"}[proto]
    assert reply in got, got
    wait_log(node, rf"{proto}: rip=127\.0\.0\.1: login timeout")


@pytest.mark.parametrize("proto", ["imap", "pop3"])
def test_login_timeout_spares_logged_in_sessions(make_ternd, proto):
    node = node_with(make_ternd, login_timeout="2s", idle_timeout="1h")
    c = greeted(node, proto)
    started = time.monotonic()
    try:
        log_in(c, proto)
        # nothing may arrive (no BYE, no close) until well past login_timeout
        assert c.closed_within(3.5 - (time.monotonic() - started)) is None, "logged-in session was closed"
        if proto == "imap":
            c.send("a2 NOOP\r\n")
            assert c.line().startswith("a2 OK")
        else:
            c.send("NOOP\r\n")
            assert c.line().startswith("+OK")
    finally:
        c.close()


# ------------------------------------------------------------ hang-ups while paused

@pytest.mark.parametrize("proto", ["imap", "pop3"])
def test_hangup_during_failure_delay_frees_the_slot(make_ternd, proto):
    node = node_with(make_ternd, auth_failure_delay="5s", max_connections=3)
    for _ in range(3):
        c = greeted(node, proto)
        if proto == "imap":
            c.send("a1 LOGIN alice wrong-password\r\n")
        else:
            c.send("USER alice\r\nPASS wrong-password\r\n")
        c.close()
    started = time.monotonic()
    c = wait_for(lambda: greeted(node, proto), 1.0, "a slot freed by the clients that hung up",
                 retry_on=(AssertionError, OSError, ConnectionError))
    c.close()
    assert time.monotonic() - started < 1.0
    # A check that had started is still counted and logged; the later ones
    # wait out the address's penalty first, and a client gone meanwhile is
    # dropped unchecked (it can learn nothing), so at least one line.
    wait_for(lambda: node.stderr_text().count("auth failed: user=<alice>") >= 1, 10,
             "a failed login in the log")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-days", "1", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    return str(crt), str(key)


@pytest.mark.parametrize("how", ["imaps", "starttls"])
def test_hangup_during_failure_delay_over_tls(make_ternd, cert, how):
    """The same through the TLS layers: implicit TLS (an OpenSSL socket
    bufferevent) and STARTTLS (a filter over the plain one)."""
    node = node_with(make_ternd, auth_failure_delay="5s", max_connections=2,
                     tls_cert=cert[0], tls_key=cert[1], imaps_listen=f"127.0.0.1:{free_port()}")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def connect():
        if how == "imaps":
            raw = socket.create_connection(addr_of(node, "imaps"), timeout=IO_TIMEOUT)
            return ctx.wrap_socket(raw), b""
        raw = socket.create_connection(addr_of(node, "imap"), timeout=IO_TIMEOUT)
        f = raw.makefile("rb")
        greeting = f.readline()
        if not greeting.startswith(b"* OK"):
            raw.close()
            return None, greeting
        raw.sendall(b"s STARTTLS\r\n")
        assert f.readline().startswith(b"s OK")
        return ctx.wrap_socket(raw), greeting

    for _ in range(2):
        tls, _ = connect()
        f = tls.makefile("rb")
        if how == "imaps":
            assert f.readline().startswith(b"* OK")
        tls.sendall(b"a1 LOGIN alice wrong-password\r\n")
        tls.close()

    def slot_free():
        tls, greeting = connect()
        if tls is None:
            return False
        try:
            if how == "imaps":
                greeting = tls.makefile("rb").readline()
            return greeting.startswith(b"* OK")
        finally:
            tls.close()
    started = time.monotonic()
    wait_for(slot_free, 1.0, "a slot freed by the TLS clients that hung up",
             retry_on=(OSError, ssl.SSLError))
    assert time.monotonic() - started < 1.0


def test_lmtp_delivery_completes_after_the_client_hangs_up(make_ternd):
    node = node_with(make_ternd)
    subject = unique_subject("hangup")
    c = LmtpConn(node.lmtp_addr)
    c.lhlo()
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    c.expect("RCPT TO:<alice@example.org>", 250)
    assert c.cmd("DATA").code == 354
    body = make_message(subject).replace(b"\r\n.", b"\r\n..")
    c.send(body + b".\r\nQUIT\r\n")
    c.close()
    wait_for(lambda: subject in node.subjects("alice"), 10, "the message of the client that hung up")
    # and the server is still in good shape
    assert deliver_one(node) in node.subjects("alice")


# ------------------------------------------------------------ out of descriptors

def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 (1-based), 12 and 13 after the name
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_accept_backs_off_when_out_of_descriptors(make_ternd):
    limit = 64

    def low_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    node = make_ternd(preexec_fn=low_fd_limit)
    node.expect_error(r"accept failed: Too many open files")
    held = []
    try:
        # fill the table: the first connection without a greeting is one the
        # server could not accept
        for _ in range(limit + 10):
            c = Client(node.lmtp_addr)
            held.append(c)
            try:
                c.line(timeout=1.0)
            except AssertionError:
                break
        else:
            pytest.fail(f"{len(held)} connections all got a greeting under a {limit} fd limit")
        assert len(held) < limit
        lines_before = node.stderr_text().count("\n")
        cpu_before = proc_cpu_seconds(node.proc.pid)
        # more clients knocking while the table is full
        for _ in range(5):
            held.append(Client(node.lmtp_addr))
        time.sleep(2.0)   # the measurement window, not a synchronisation
        cpu = proc_cpu_seconds(node.proc.pid) - cpu_before
        grown = node.stderr_text().count("\n") - lines_before
        assert cpu < 0.5, f"ternd used {cpu:.2f}s of CPU in 2s while out of descriptors"
        assert grown <= 5, f"the log grew by {grown} lines in 2s:\n{node.stderr_text()[-2000:]}"
    finally:
        close_all(held)
    # descriptors are back: new connections are served, and mail is delivered
    def lmtp_greets():
        with LmtpConn(node.lmtp_addr, timeout=2) as c:
            return c.greeting.code == 220
    wait_for(lmtp_greets, 10, "an LMTP greeting after the descriptors came back",
             retry_on=(AssertionError, OSError))
    assert deliver_one(node) in node.subjects("alice")
    # one line when the episode starts, one when accepts have stopped failing
    over = wait_for(lambda: re.search(r"shortage over after \d+ ms, (\d+) accept\(s\) deferred",
                                      node.stderr_text()), 5, "the end of the shortage in the log")
    assert int(over.group(1)) >= 1
    assert len(re.findall(r"accept failed: Too many open files", node.stderr_text())) == 1
