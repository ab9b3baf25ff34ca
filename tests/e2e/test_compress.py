"""IMAP COMPRESS=DEFLATE (RFC 4978) end to end with a raw socket and zlib:
the tagged OK in clear, then raw deflate both ways with every response
flushed promptly, over plain TCP and over TLS, large responses, the close
after LOGOUT, and a corrupt or explosive stream closing only that
connection."""

import re
import socket
import ssl
import subprocess
import time
import zlib

import pytest

from ternlib import (IO_TIMEOUT, PASSWORD, LmtpConn, free_port, make_message,
                     unique_subject)

SENDER = "sender@remote.test"


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    return str(crt), str(key)


@pytest.fixture
def node(make_ternd, cert):
    n = make_ternd(imap_listen=f"127.0.0.1:{free_port()}",
                   imaps_listen=f"127.0.0.1:{free_port()}",
                   tls_cert=cert[0], tls_key=cert[1], auth_failure_delay="50ms")
    return n


def addr(node, key="imap_listen"):
    host, port = node.settings[key].rsplit(":", 1)
    return host, int(port)


def deliver(node, body):
    subject = unique_subject("deflate")
    raw = make_message(subject, body=body)
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        _, replies = c.deliver(SENDER, ["alice@example.org"], raw)
        assert [r.code for r in replies] == [250], replies
    return node.find("alice", "INBOX", subject)


class Imap:
    """A raw IMAP client that can switch to DEFLATE; every read has a
    deadline, and after COMPRESS a response must arrive without the client
    sending anything more (the server flushes each burst)."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(IO_TIMEOUT)
        self.buf = b""
        self.inflate = None
        self.deflate = None
        self.wire_in = 0

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self):
        deadline = time.monotonic() + IO_TIMEOUT
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"no response in time (have {self.buf[-200:]!r})")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed (have {self.buf[-200:]!r})")
            self.wire_in += len(chunk)
            if self.inflate is not None:
                chunk = self.inflate.decompress(chunk)
            if chunk:
                self.buf += chunk
                return

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def response(self, tag):
        """Lines up to the tagged one (literals read in full)."""
        lines = []
        while True:
            line = self.line()
            m = re.search(rb"\{(\d+)\}$", line)
            if m:
                n = int(m.group(1))
                while len(self.buf) < n:
                    self._fill()
                line += b"\r\n" + self.buf[:n]
                self.buf = self.buf[n:]
                line += self.line()
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def cmd(self, tag, text):
        self.send(f"{tag} {text}\r\n")
        return self.response(tag)

    def start_deflate(self, pipelined=False):
        """Bytes already received behind the OK are deflated: only a client
        that pipelined commands may see any."""
        assert pipelined or self.buf == b"", f"bytes after the COMPRESS OK: {self.buf!r}"
        self.inflate = zlib.decompressobj(-15)
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.buf = self.inflate.decompress(self.buf)

    def closed(self):
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                if self.inflate is not None:
                    chunk = self.inflate.decompress(chunk)
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True


def connect(node, tls=False):
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(socket.create_connection(addr(node, "imaps_listen"),
                                                        timeout=IO_TIMEOUT),
                               server_hostname="localhost")
    else:
        sock = socket.create_connection(addr(node), timeout=IO_TIMEOUT)
    c = Imap(sock)
    assert c.line().startswith(b"* OK")
    return c


def login_and_compress(node, tls=False):
    c = connect(node, tls)
    r = c.cmd("a", f'LOGIN alice "{PASSWORD}"')
    assert r[-1].startswith(b"a OK"), r
    caps = b" ".join(c.cmd("b", "CAPABILITY"))
    assert b"COMPRESS=DEFLATE" in caps, caps
    r = c.cmd("c", "COMPRESS DEFLATE")
    assert r[-1].startswith(b"c OK"), r
    c.start_deflate()
    return c


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_compress_round_trip(node, tls):
    c = login_and_compress(node, tls)
    for i in range(3):
        assert c.cmd(f"n{i}", "NOOP")[-1].startswith(f"n{i} OK".encode())
    r = c.cmd("s", "SELECT INBOX")
    assert r[-1].startswith(b"s OK"), r
    r = c.cmd("d", "COMPRESS DEFLATE")
    assert r[-1].startswith(b"d NO"), r
    assert b"COMPRESSIONACTIVE" in r[-1]
    r = c.cmd("z", "LOGOUT")
    assert r[0].startswith(b"* BYE") and r[-1].startswith(b"z OK"), (
        "the last responses before the close must be flushed through deflate")
    assert c.closed()


def test_large_response_is_compressed(node):
    body = ("All work and no play makes Jack a dull boy.\r\n" * 20000)
    raw = deliver(node, body)
    c = login_and_compress(node)
    assert c.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
    before = c.wire_in
    r = c.cmd("f", "FETCH 1 BODY.PEEK[]")
    assert r[-1].startswith(b"f OK"), r[-1]
    assert raw in r[0], "the literal arrived intact"
    assert c.wire_in - before < len(raw) / 10, "repetitive text must shrink on the wire"
    c.cmd("z", "LOGOUT")


def test_pipelined_after_compress(node):
    """Compressed bytes that arrive in the same segment as the COMPRESS
    command are inflated and answered, not lost."""
    c = connect(node)
    assert c.cmd("a", f'LOGIN alice "{PASSWORD}"')[-1].startswith(b"a OK")
    d = zlib.compressobj(6, zlib.DEFLATED, -15)
    c.sock.sendall(b"c COMPRESS DEFLATE\r\n" + d.compress(b"n NOOP\r\n") + d.flush(zlib.Z_SYNC_FLUSH))
    assert c.line().startswith(b"c OK")
    c.start_deflate(pipelined=True)
    c.deflate = d
    r = c.response("n")
    assert r[-1].startswith(b"n OK"), r
    c.cmd("z", "LOGOUT")


def test_corrupt_stream_closes_connection(node):
    c = login_and_compress(node)
    c.sock.sendall(b"\xff" * 64)    # not valid deflate
    assert c.closed()
    # the node still serves
    c2 = login_and_compress(node)
    assert c2.cmd("n", "NOOP")[-1].startswith(b"n OK")
    c2.cmd("z", "LOGOUT")


def test_decompression_bomb_closes_connection(node):
    c = login_and_compress(node)
    d = c.deflate
    bomb = d.compress(b"A" * (64 * 1024 * 1024)) + d.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 200 * 1024
    try:
        c.sock.sendall(bomb)
    except (ConnectionResetError, BrokenPipeError):
        pass
    assert c.closed()
    c2 = login_and_compress(node)
    assert c2.cmd("n", "NOOP")[-1].startswith(b"n OK")
    c2.cmd("z", "LOGOUT")
