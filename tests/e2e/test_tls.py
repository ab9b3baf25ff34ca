"""TLS end to end: implicit TLS (imaps, pop3s) with Python's ssl and with
curl, STARTTLS (IMAP) and STLS (POP3) upgrades, no plaintext command carried
across the upgrade, the plaintext-login policy before and after TLS, and
start-up refusing an unusable certificate (naming the file)."""

import imaplib
import poplib
import re
import socket
import ssl
import subprocess

import pytest

from ternlib import (IO_TIMEOUT, PASSWORD, TERND, LmtpConn, free_port, make_message,
                     unique_subject, wait_for)

SENDER = "sender@remote.test"
REFUSED_POP3 = "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections"


# ------------------------------------------------------------------ set-up

@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A throw-away self-signed certificate: (cert path, key path)."""
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    return str(crt), str(key)


def client_context():
    """Accepts the self-signed certificate, as `curl -k` does."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_node(make_ternd, cert, host="127.0.0.1", imap=True, **settings):
    """A node with pop3/pop3s (and imap/imaps) listeners on free ports of
    `host` and the test certificate."""
    listen = {"pop3_listen": f"{host}:{free_port()}", "pop3s_listen": f"{host}:{free_port()}"}
    if imap:
        listen.update(imap_listen=f"{host}:{free_port()}", imaps_listen=f"{host}:{free_port()}")
    settings.setdefault("auth_failure_delay", "50ms")
    return make_ternd(tls_cert=cert[0], tls_key=cert[1], **listen, **settings)


def addr(node, key):
    host, port = node.settings[key].rsplit(":", 1)
    return host, int(port)


def deliver(node, user="alice", body="Hello over TLS.\r\n"):
    subject = unique_subject("tls")
    raw = make_message(subject, body=body, to=f"{user}@example.org")
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        _, replies = c.deliver(SENDER, [f"{user}@example.org"], raw)
        assert [r.code for r in replies] == [250], replies
    return subject, node.find(user, "INBOX", subject)


def non_loopback_ipv4():
    """This host's outward IPv4 address (a UDP connect sends nothing), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.254", 9))
        except OSError:
            return None
        a = s.getsockname()[0]
    return None if a.startswith("127.") else a


class Raw:
    """A line-oriented client over a socket that can be upgraded to TLS in
    place; every read has a deadline."""

    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=IO_TIMEOUT)
        self.buf = b""

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

    def starttls(self):
        """Upgrades; fails if the server had sent anything more in clear."""
        assert self.buf == b"", f"bytes in clear after the upgrade reply: {self.buf!r}"
        self.sock = client_context().wrap_socket(self.sock, server_hostname="localhost")

    def closed(self):
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True


def wait_log(node, pattern, what):
    return wait_for(lambda: re.search(pattern, node.stderr_text()), IO_TIMEOUT, what)


# ------------------------------------------------------------------ start-up

def ternd_conf(tmp_path, **settings):
    lines = {"data_dir": str(tmp_path / "data"), "lmtp_listen": f"127.0.0.1:{free_port()}",
             "imap_listen": "", "pop3_listen": "", "admin_listen": ""}
    lines.update(settings)
    path = tmp_path / "ternd.conf"
    path.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
    return str(path)


def run_ternd(conf):
    return subprocess.run([TERND, "--config", conf], capture_output=True, timeout=IO_TIMEOUT,
                          stdin=subprocess.DEVNULL)


def test_missing_cert_file_refuses_start(tmp_path, cert):
    missing = str(tmp_path / "no-such-cert.pem")
    proc = run_ternd(ternd_conf(tmp_path, tls_cert=missing, tls_key=cert[1]))
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, err
    assert missing in err and "tls_cert" in err, err


def test_missing_key_file_refuses_start(tmp_path, cert):
    missing = str(tmp_path / "no-such-key.pem")
    proc = run_ternd(ternd_conf(tmp_path, tls_cert=cert[0], tls_key=missing))
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, err
    assert missing in err and "tls_key" in err, err


def test_key_not_matching_cert_refuses_start(tmp_path, cert):
    bad = tmp_path / "garbage.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    proc = run_ternd(ternd_conf(tmp_path, tls_cert=cert[0], tls_key=str(bad)))
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, err
    assert str(bad) in err, err


def test_implicit_tls_listener_needs_a_cert(tmp_path):
    proc = run_ternd(ternd_conf(tmp_path, pop3s_listen=f"127.0.0.1:{free_port()}"))
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, err
    assert "pop3s_listen" in err and "tls_cert" in err, err



def check_config(conf):
    return subprocess.run([TERND, "--check-config", "--config", str(conf)], capture_output=True,
                          timeout=10, stdin=subprocess.DEVNULL)


def test_check_config_loads_the_certificate(tmp_path, cert):
    """--check-config finds a broken TLS setup before a restart does."""
    good = check_config(ternd_conf(tmp_path, tls_cert=cert[0], tls_key=cert[1]))
    assert good.returncode == 0, good.stderr.decode(errors="replace")
    missing = str(tmp_path / "no-such-key.pem")
    bad = check_config(ternd_conf(tmp_path, tls_cert=cert[0], tls_key=missing))
    err = bad.stderr.decode(errors="replace")
    assert bad.returncode != 0 and missing in err, err
    no_cert = check_config(ternd_conf(tmp_path, imaps_listen=f"127.0.0.1:{free_port()}"))
    err = no_cert.stderr.decode(errors="replace")
    assert no_cert.returncode != 0 and "imaps_listen" in err, err

# ------------------------------------------------------------------ POP3

def test_pop3s_login_and_retr(make_ternd, cert):
    node = tls_node(make_ternd, cert, imap=False)
    _, raw = deliver(node, body="x" * 200 + "\r\n")
    p = poplib.POP3_SSL(*addr(node, "pop3s_listen"), context=client_context(),
                        timeout=IO_TIMEOUT)
    assert p.getwelcome() == b"+OK Tern POP3 ready"
    sock = p.sock
    assert sock.version() in ("TLSv1.2", "TLSv1.3"), sock.version()
    assert sock.compression() is None
    caps = p.capa()
    assert "STLS" not in caps, "no STLS over TLS"
    assert "USER" in caps
    p.user("alice")
    p.pass_(PASSWORD)
    assert p.stat() == (1, len(raw))
    _, lines, _ = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == raw
    assert p.quit().startswith(b"+OK")


def test_pop3_stls_upgrade(make_ternd, cert):
    node = tls_node(make_ternd, cert, imap=False)
    # a big message: the reply crosses many TLS records and socket writes
    _, raw = deliver(node, body=("0123456789abcdef" * 60 + "\r\n") * 700)
    p = poplib.POP3(*addr(node, "pop3_listen"), timeout=IO_TIMEOUT)
    assert "STLS" in p.capa()
    assert p.stls(context=client_context()).startswith(b"+OK")
    assert p.sock.version() in ("TLSv1.2", "TLSv1.3")
    caps = p.capa()
    assert "STLS" not in caps, caps
    with pytest.raises(poplib.error_proto, match="TLS active"):
        p._shortcmd("STLS")
    p.user("alice")
    p.pass_(PASSWORD)
    _, lines, _ = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == raw
    with pytest.raises(poplib.error_proto):
        p._shortcmd("STLS")
    # QUIT's reply is the last thing written before the close: it must arrive
    assert p.quit().startswith(b"+OK")


def test_pop3_stls_refused_after_login(make_ternd, cert):
    node = tls_node(make_ternd, cert, imap=False)
    p = poplib.POP3(*addr(node, "pop3_listen"), timeout=IO_TIMEOUT)
    p.user("alice")
    p.pass_(PASSWORD)
    assert "STLS" not in p.capa()
    with pytest.raises(poplib.error_proto):
        p._shortcmd("STLS")
    assert p.noop().startswith(b"+OK"), "the session goes on in clear"
    p.quit()


def test_pop3_stls_not_offered_without_cert(make_ternd):
    node = make_ternd(pop3_listen=f"127.0.0.1:{free_port()}")
    p = poplib.POP3(*addr(node, "pop3_listen"), timeout=IO_TIMEOUT)
    assert "STLS" not in p.capa()
    with pytest.raises(poplib.error_proto, match="not available"):
        p._shortcmd("STLS")
    p.quit()


def test_pop3_plaintext_after_stls_not_executed(make_ternd, cert):
    node = tls_node(make_ternd, cert, imap=False)
    c = Raw(addr(node, "pop3_listen"))
    assert c.line().startswith("+OK")
    # the CAPA rides in the same segment as STLS: an attacker's injection
    c.send("STLS\r\nCAPA\r\n")
    assert c.line() == "+OK Begin TLS negotiation"
    c.starttls()
    c.send("QUIT\r\n")
    first = c.line()
    assert first.startswith("+OK") and "Capability" not in first, (
        f"a command sent in clear before the handshake was answered: {first!r}")
    assert c.closed()
    wait_log(node, r"pop3: rip=127\.0\.0\.1: \d+ byte\(s\) of plaintext after STARTTLS discarded",
             "the discarded plaintext to be logged")


def test_pop3_plaintext_refused_off_loopback_until_stls(make_ternd, cert):
    host = non_loopback_ipv4()
    if host is None:
        pytest.skip("no non-loopback IPv4 address to listen on")
    node = tls_node(make_ternd, cert, host=host, imap=False)
    c = Raw(addr(node, "pop3_listen"))
    assert c.line().startswith("+OK")
    c.send("USER alice\r\n")
    assert c.line() == REFUSED_POP3
    c.send("STLS\r\n")
    assert c.line().startswith("+OK")
    c.starttls()
    c.send("CAPA\r\n")
    assert c.line().startswith("+OK")
    caps = []
    while (l := c.line()) != ".":
        caps.append(l)
    assert "USER" in caps and "SASL PLAIN" in caps and "STLS" not in caps, caps
    c.send(f"USER alice\r\nPASS {PASSWORD}\r\n")
    assert c.line() == "+OK"
    assert c.line().startswith("+OK"), "login over STLS from a non-loopback address"
    c.send("QUIT\r\n")
    assert c.line().startswith("+OK")
    # implicit TLS from the same address is secure too
    p = poplib.POP3_SSL(*addr(node, "pop3s_listen"), context=client_context(),
                        timeout=IO_TIMEOUT)
    p.user("alice")
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_handshake_failure_is_logged_and_closed(make_ternd, cert):
    node = tls_node(make_ternd, cert, imap=False)
    c = Raw(addr(node, "pop3s_listen"))
    c.send(b"USER alice\r\n" * 4)   # plaintext to a TLS port
    assert c.closed()
    wait_log(node, r"info: pop3: rip=127\.0\.0\.1: TLS handshake failed: \S",
             "the failed handshake to be logged with the client and the reason")
    # TLS 1.1 is below the floor
    ctx = client_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with socket.create_connection(addr(node, "pop3s_listen"), timeout=IO_TIMEOUT) as s:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            ctx.wrap_socket(s, server_hostname="localhost")
    # the node still serves
    p = poplib.POP3_SSL(*addr(node, "pop3s_listen"), context=client_context(),
                        timeout=IO_TIMEOUT)
    p.quit()


def test_idle_timeout_applies_after_stls(make_ternd, cert):
    node = tls_node(make_ternd, cert, imap=False, idle_timeout="1s")
    for key in ("pop3_listen", "pop3s_listen"):
        if key == "pop3_listen":
            p = poplib.POP3(*addr(node, key), timeout=IO_TIMEOUT)
            p.stls(context=client_context())
        else:
            p = poplib.POP3_SSL(*addr(node, key), context=client_context(), timeout=IO_TIMEOUT)
        # the bounded read is the wait: the server speaks first, after 1 s
        line, _ = p._getline()
        assert line == b"-ERR Disconnected for inactivity", (key, line)
        p.close()


def test_shutdown_reaches_tls_sessions(make_ternd, cert):
    node = tls_node(make_ternd, cert, imap=False)
    upgraded = poplib.POP3(*addr(node, "pop3_listen"), timeout=IO_TIMEOUT)
    upgraded.stls(context=client_context())
    upgraded.user("alice")
    upgraded.pass_(PASSWORD)
    implicit = poplib.POP3_SSL(*addr(node, "pop3s_listen"), context=client_context(),
                               timeout=IO_TIMEOUT)
    assert node.terminate() == 0
    for p in (upgraded, implicit):
        line, _ = p._getline()
        assert line.startswith(b"-ERR [SYS/TEMP]"), line
        p.close()


def test_curl_pop3s(make_ternd, cert):
    node = tls_node(make_ternd, cert, imap=False)
    _, raw = deliver(node)
    host, port = addr(node, "pop3s_listen")
    proc = subprocess.run(["curl", "-sS", "-k", "--max-time", str(int(IO_TIMEOUT)),
                           f"pop3s://{host}:{port}/", "-u", f"alice:{PASSWORD}"],
                          capture_output=True, timeout=IO_TIMEOUT + 5)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.decode().split() == ["1", str(len(raw))]
    proc = subprocess.run(["curl", "-sS", "-k", "--max-time", str(int(IO_TIMEOUT)),
                           f"pop3s://{host}:{port}/1", "-u", f"alice:{PASSWORD}"],
                          capture_output=True, timeout=IO_TIMEOUT + 5)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == raw


def test_curl_pop3_ssl_reqd_uses_stls(make_ternd, cert):
    node = tls_node(make_ternd, cert, imap=False)
    _, raw = deliver(node)
    host, port = addr(node, "pop3_listen")
    proc = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd", "--max-time", str(int(IO_TIMEOUT)),
                           f"pop3://{host}:{port}/1", "-u", f"alice:{PASSWORD}"],
                          capture_output=True, timeout=IO_TIMEOUT + 5)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == raw


# ------------------------------------------------------------------ IMAP

def imap_caps(lines):
    for l in lines:
        m = re.search(r"CAPABILITY ([^\]]*)", l)
        if m:
            return m.group(1).split()
    return []


def test_imaps_login_select_fetch(make_ternd, cert):
    node = tls_node(make_ternd, cert)
    _, raw = deliver(node)
    m = imaplib.IMAP4_SSL(*addr(node, "imaps_listen"), ssl_context=client_context(),
                          timeout=IO_TIMEOUT)
    assert m.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert "STARTTLS" not in m.capabilities
    assert "LOGINDISABLED" not in m.capabilities
    m.login("alice", PASSWORD)
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"1"], data
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK"
    assert data[0][1] == raw
    assert m.logout()[0] == "BYE"


def test_imap_starttls(make_ternd, cert):
    node = tls_node(make_ternd, cert)
    m = imaplib.IMAP4(*addr(node, "imap_listen"), timeout=IO_TIMEOUT)
    assert "STARTTLS" in m.capabilities
    typ, _ = m.starttls(ssl_context=client_context())
    assert typ == "OK"
    assert m.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert "STARTTLS" not in m.capabilities
    m.login("alice", PASSWORD)
    assert m.select("INBOX")[0] == "OK"
    assert m.logout()[0] == "BYE"


def test_imap_plaintext_after_starttls_not_executed(make_ternd, cert):
    node = tls_node(make_ternd, cert)
    c = Raw(addr(node, "imap_listen"))
    assert c.line().startswith("* OK")
    c.send("a STARTTLS\r\nb NOOP\r\n")
    reply = c.line()
    assert reply.startswith("a OK"), reply
    c.starttls()
    c.send("c NOOP\r\n")
    line = c.line()
    while line.startswith("*"):
        line = c.line()
    assert line.startswith("c OK"), f"b was answered after STARTTLS: {line!r}"
    c.send("d LOGOUT\r\n")
    while not c.line().startswith("d "):
        pass


def test_imap_logindisabled_off_loopback_until_tls(make_ternd, cert):
    host = non_loopback_ipv4()
    if host is None:
        pytest.skip("no non-loopback IPv4 address to listen on")
    node = tls_node(make_ternd, cert, host=host)
    c = Raw(addr(node, "imap_listen"))
    greeting = c.line()
    c.send("a CAPABILITY\r\n")
    lines = [c.line(), c.line()]
    caps = imap_caps([greeting] + lines)
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps, lines
    c.send(f"b LOGIN alice \"{PASSWORD}\"\r\n")
    assert c.line().startswith("b NO"), "plaintext LOGIN from a non-loopback address"
    c.send("c STARTTLS\r\n")
    assert c.line().startswith("c OK")
    c.starttls()
    c.send("d CAPABILITY\r\n")
    lines = [c.line(), c.line()]
    caps = imap_caps(lines)
    assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps, lines
    c.send(f"e LOGIN alice \"{PASSWORD}\"\r\n")
    line = c.line()
    while line.startswith("*"):
        line = c.line()
    assert line.startswith("e OK"), line
    # implicit TLS from the same address
    m = imaplib.IMAP4_SSL(*addr(node, "imaps_listen"), ssl_context=client_context(),
                          timeout=IO_TIMEOUT)
    assert "LOGINDISABLED" not in m.capabilities
    m.login("alice", PASSWORD)
    m.logout()


def test_curl_imaps(make_ternd, cert):
    node = tls_node(make_ternd, cert)
    _, raw = deliver(node)
    host, port = addr(node, "imaps_listen")
    proc = subprocess.run(["curl", "-sS", "-k", "--max-time", str(int(IO_TIMEOUT)),
                           f"imaps://{host}:{port}/INBOX;UID=1", "-u", f"alice:{PASSWORD}"],
                          capture_output=True, timeout=IO_TIMEOUT + 5)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == raw
    proc = subprocess.run(["curl", "-sS", "-k", "--max-time", str(int(IO_TIMEOUT)),
                           f"imaps://{host}:{port}/INBOX", "-u", f"alice:{PASSWORD}",
                           "-X", "EXAMINE INBOX"],
                          capture_output=True, timeout=IO_TIMEOUT + 5)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"1 EXISTS" in proc.stdout


def test_curl_imap_starttls(make_ternd, cert):
    node = tls_node(make_ternd, cert)
    _, raw = deliver(node)
    host, port = addr(node, "imap_listen")
    proc = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd", "--max-time", str(int(IO_TIMEOUT)),
                           f"imap://{host}:{port}/INBOX;UID=1", "-u", f"alice:{PASSWORD}"],
                          capture_output=True, timeout=IO_TIMEOUT + 5)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == raw
