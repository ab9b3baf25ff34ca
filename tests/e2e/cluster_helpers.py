"""Helpers for the cluster end-to-end tests: several ternd nodes on loopback
sharing one directory (the SQLite file) and one cluster secret, users homed
on each, a node stopped, killed, paused or restarted on its own ports, and
the truth about a user's mail read from the user's home node with ternctl.
Also small raw POP3 and COMPRESS=DEFLATE IMAP clients whose every read has a
deadline, and the cluster channel's frame encoding for the bad-input tests
(src/cluster/frame.h)."""

import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import time
import zlib

import pytest

from imap_helpers import Raw
from ternlib import (IO_TIMEOUT, PASSWORD, PASSWORD_HASH, STOP_TIMEOUT, LmtpConn, Ternd,
                     free_port, make_message, message_list, unique_subject, wait_for)

SENDER = "sender@remote.test"
SECRET = "tern-test-cluster-secret-0123456789"
CLUSTER_TIMEOUT = 2.0           # seconds; the cluster_timeout every test node gets
SLACK = 1.0                     # what the assertions allow on top of it
NODE_NAMES = ("node-a", "node-b", "node-c")
# One user homed on each node unless a test asks otherwise.
DEFAULT_USERS = {"alice": "node-a", "bob": "node-b", "carol": "node-c"}

# Error lines a node may log while a peer is away on purpose (stopped,
# killed, paused, wrong secret, bad input on its cluster port): a test that
# makes such an outage declares them with Cluster.expect_outage_errors().
OUTAGE_ERRORS = (r"(?i)cluster|peer|node-[a-z]|unreachable|handshake|authenticat|relay|proxy|"
                 r"frame|127\.0\.0\.1")


def listen_addr(value):
    host, port = value.rsplit(":", 1)
    return host, int(port)


class Cluster:
    """Nodes named node-a, node-b, ... each with its own data_dir, LMTP, IMAP
    and POP3 ports and cluster_listen port, all with the same `directory`,
    `cluster_secret` and a short `cluster_timeout`. Ports stay the same
    across restarts, so the directory's addresses stay right."""

    def __init__(self, workdir, names=NODE_NAMES, settings=None, node_settings=None):
        self.workdir = str(workdir)
        self.directory = os.path.join(self.workdir, "shared", "directory.db")
        os.makedirs(os.path.dirname(self.directory), exist_ok=True)
        self.nodes = {}
        self.homes = {}
        self.paused = set()
        for name in names:
            self.add_node(name, settings, (node_settings or {}).get(name))

    # ------------------------------------------------------------ nodes
    def add_node(self, name, settings=None, extra=None, secret=SECRET):
        """A node (not started) sharing the cluster's directory; `secret`
        may differ from the cluster's (the wrong-secret test)."""
        s = {
            "node_name": name,
            "directory": self.directory,
            "cluster_listen": f"127.0.0.1:{free_port()}",
            "cluster_secret": secret,
            "cluster_timeout": f"{int(CLUSTER_TIMEOUT * 1000)}ms",
            "imap_listen": f"127.0.0.1:{free_port()}",
            "pop3_listen": f"127.0.0.1:{free_port()}",
            "auth_failure_delay": "50ms",
        }
        s.update(settings or {})
        s.update(extra or {})
        node = Ternd(os.path.join(self.workdir, name), s)
        self.nodes[name] = node
        return node

    def __getitem__(self, name):
        return self.nodes[name]

    def names(self):
        return list(self.nodes)

    def start(self, name):
        """Starts (or restarts, on the same ports) one node and waits for
        its 'ready' log line: every listener is open by then."""
        node = self.nodes[name]
        node.start(new_port=node.lmtp_port is None)
        wait_for(lambda: re.search(rf"node {re.escape(name)} ready", node.stderr_text()),
                 IO_TIMEOUT, f"{name} to log that it is ready")
        return node

    def start_all(self):
        for name in self.nodes:
            self.start(name)
        return self

    restart = start

    def stop(self, name):
        """SIGTERM; the node must exit 0 in time."""
        rc = self.nodes[name].terminate()
        assert rc == 0, f"{name} exited {rc} on SIGTERM"

    def kill(self, name):
        self.nodes[name].kill()

    def pause(self, name):
        """SIGSTOP: the kernel still accepts TCP connections for the node,
        and the node answers nothing: a hung peer."""
        self.paused.add(name)
        self.nodes[name].proc.send_signal(signal.SIGSTOP)

    def resume(self, name):
        self.nodes[name].proc.send_signal(signal.SIGCONT)
        self.paused.discard(name)

    def expect_outage_errors(self, *names):
        """Error lines about peers, the cluster channel or proxying are part
        of a test that makes an outage on purpose."""
        for name in names or self.nodes:
            self.nodes[name].expect_error(OUTAGE_ERRORS)

    # ------------------------------------------------------------ addresses
    def imap_addr(self, name, key="imap_listen"):
        return listen_addr(self.nodes[name].settings[key])

    def pop3_addr(self, name, key="pop3_listen"):
        return listen_addr(self.nodes[name].settings[key])

    def lmtp_addr(self, name):
        return self.nodes[name].lmtp_addr

    def cluster_addr(self, name):
        return listen_addr(self.nodes[name].settings["cluster_listen"])

    def log(self, name):
        return self.nodes[name].all_stderr()

    def wait_log(self, name, pattern, what, timeout=5.0):
        return wait_for(lambda: re.search(pattern, self.log(name)), timeout,
                        f"{name} to log {what} (/{pattern}/)")

    # ------------------------------------------------------------ users
    def add_user(self, user, home, password=None):
        """Adds the user with ternctl on its home node, so the mail store is
        created there."""
        node = self.nodes[home]
        if password is None:
            node.ctl("user", "add", user, "--home", home, "--hash", PASSWORD_HASH)
        else:
            node.ctl("user", "add", user, "--home", home, "--password-stdin",
                     input=password + "\n")
        self.homes[user] = home

    def home(self, user):
        return self.nodes[self.homes[user]]

    def others(self, name):
        return [n for n in self.nodes if n != name]

    # ------------------------------------------------------------ the home's truth
    def messages(self, user, folder="INBOX"):
        """`ternctl mailbox list` on the user's home node."""
        return message_list(self.home(user).ctl("mailbox", "list", user, folder, as_json=True))

    def folders(self, user):
        """{folder name: row of `ternctl mailbox folders`} on the home node."""
        rows = self.home(user).ctl("mailbox", "folders", user, as_json=True)
        if isinstance(rows, dict):
            rows = next(v for v in rows.values() if isinstance(v, list))
        return {r["name"]: r for r in rows}

    def cat(self, user, folder, uid):
        return self.home(user).ctl("mailbox", "cat", user, folder, uid).stdout

    def find(self, user, subject, folder="INBOX"):
        """(uid, flags set, raw bytes) of the one message with this subject."""
        found = [m for m in self.messages(user, folder) if m.get("subject") == subject]
        assert len(found) == 1, (f"expected exactly one message {subject!r} in {user}/{folder} "
                                 f"on {self.homes[user]}, found {len(found)}")
        m = found[0]
        raw = self.cat(user, folder, m["uid"])
        assert m["size"] == len(raw), f"ternctl list size {m['size']} != cat size {len(raw)}"
        return m["uid"], set(m["flags"]), raw

    def deliver_at_home(self, user, subject=None, body="Hello from the cluster tests.\r\n"):
        """One delivery over LMTP straight to the user's home node (no
        relay). Returns (subject, stored raw bytes)."""
        subject = subject or unique_subject("cl")
        msg = make_message(subject, body=body, to=f"{user}@example.org")
        with LmtpConn(self.home(user).lmtp_addr) as c:
            c.lhlo()
            _, replies = c.deliver(SENDER, [f"{user}@example.org"], msg)
            assert [r.code for r in replies] == [250], replies
        return subject, self.find(user, subject)[2]

    # ------------------------------------------------------------ teardown
    def teardown_problems(self):
        """SIGCONT for paused nodes, then SIGTERM to every running node at
        once (so no node sees its peers leave one by one) and the usual
        checks: exit 0 in time, no unexpected error line. An error line
        about a peer logged during this shared shutdown is not a problem."""
        problems = []
        for name in list(self.paused):
            self.resume(name)
        offsets = {}
        running = [n for n in self.nodes.values() if n.running()]
        for node in running:
            offsets[node] = len(node.stderr_text())
            node.proc.send_signal(signal.SIGTERM)
        for node in running:
            try:
                node.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                problems.append(f"{node.workdir}: ternd did not exit within {STOP_TIMEOUT}s of SIGTERM")
                node.runs[-1][2] = True
                node.proc.kill()
                node.proc.wait(timeout=STOP_TIMEOUT)
        outage = re.compile(OUTAGE_ERRORS)
        for node, offset in offsets.items():
            for line in node.stderr_text()[offset:].splitlines():
                if ": error:" in line and outage.search(line):
                    node.expected_errors.append(re.compile(re.escape(line)))
        for node in self.nodes.values():
            if node.runs:
                problems += node.teardown_problems()
        return problems


def cluster_factory(tmp_path):
    """The body of a `make_cluster` fixture (yield from it):
    make_cluster(users=DEFAULT_USERS, names=NODE_NAMES, start=True,
    node_settings={name: {...}}, **settings) -> Cluster, started, with the
    users added on their homes. Every node is stopped and checked at
    teardown."""
    clusters = []

    def make(users=None, names=NODE_NAMES, start=True, node_settings=None, **settings):
        c = Cluster(tmp_path / f"cluster{len(clusters) + 1}", names, settings, node_settings)
        clusters.append(c)
        if start:
            c.start_all()
            for user, home in (DEFAULT_USERS if users is None else users).items():
                c.add_user(user, home)
        return c

    yield make

    problems = []
    for c in clusters:
        problems += c.teardown_problems()
    if problems:
        pytest.fail("cluster teardown check failed:\n" + "\n".join(problems), pytrace=False)


# ---------------------------------------------------------------- POP3

class Pop3:
    """A raw POP3 client over a socket (plain or already TLS); every read
    has a deadline."""

    def __init__(self, addr=None, sock=None, timeout=IO_TIMEOUT):
        self.sock = sock or socket.create_connection(addr, timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.line()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no complete POP3 reply in time (have {self.buf[-300:]!r})")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            raise ConnectionError(f"POP3 server closed the connection (pending {self.buf[-300:]!r})")
        self.buf += chunk

    def line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", errors="replace")

    def cmd(self, text, timeout=None):
        self.send(text + "\r\n")
        return self.line(timeout)

    def ok(self, text):
        r = self.cmd(text)
        assert r.startswith("+OK"), f"{text.split()[0]}: expected +OK, got {r!r}"
        return r

    def multiline(self, text):
        """(status line, body bytes with the byte-stuffing undone)."""
        status = self.ok(text)
        deadline = time.monotonic() + self.timeout
        while b"\r\n.\r\n" not in b"\r\n" + self.buf:
            self._fill(deadline)
        data = b"\r\n" + self.buf
        end = data.index(b"\r\n.\r\n")
        body, self.buf = data[2:end + 2], data[end + 5:]
        lines = body.split(b"\r\n")[:-1]
        return status, b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n" for l in lines)

    def login(self, user, password=PASSWORD):
        self.ok(f"USER {user}")
        return self.cmd(f"PASS {password}")

    def closed_within(self, timeout):
        """Reads until EOF or reset within timeout; returns what came meanwhile."""
        deadline = time.monotonic() + timeout
        got, self.buf = self.buf, b""
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"POP3 server did not close the connection (got {got!r})"
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return got
            if not chunk:
                return got
            got += chunk


# ---------------------------------------------------------------- IMAP with DEFLATE

class DeflateImap:
    """A raw IMAP client that can switch to COMPRESS=DEFLATE (RFC 4978);
    every read has a deadline. Counts the bytes that came off the wire."""

    def __init__(self, addr, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.inflate = None
        self.deflate = None
        self.wire_in = 0
        self.greeting = self.line()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self, deadline):
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no IMAP response in time (have {self.buf[-300:]!r})")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError(f"connection closed (have {self.buf[-300:]!r})")
            self.wire_in += len(chunk)
            if self.inflate is not None:
                chunk = self.inflate.decompress(chunk)
            if chunk:
                self.buf += chunk
                return

    def line(self, deadline=None):
        deadline = deadline or time.monotonic() + self.timeout
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def response(self, tag):
        """Responses up to the tagged one, literals inlined."""
        deadline = time.monotonic() + self.timeout
        lines = []
        while True:
            line = self.line(deadline)
            while True:
                m = re.search(rb"\{(\d+)\}$", line)
                if not m:
                    break
                n = int(m.group(1))
                while len(self.buf) < n:
                    self._fill(deadline)
                line += b"\r\n" + self.buf[:n]
                self.buf = self.buf[n:]
                line += self.line(deadline)
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def cmd(self, tag, text):
        self.send(f"{tag} {text}\r\n")
        return self.response(tag)

    def start_deflate(self):
        assert self.buf == b"", f"bytes in clear after the COMPRESS OK: {self.buf!r}"
        self.inflate = zlib.decompressobj(-15)
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)

    def closed(self, timeout=IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "server did not close the connection"
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                return True
            if not chunk:
                return True
            if self.inflate is not None:
                chunk = self.inflate.decompress(chunk)
            self.buf += chunk


# ---------------------------------------------------------------- TLS

def make_cert(directory, cn):
    """A throw-away self-signed certificate: (cert path, key path)."""
    crt, key = os.path.join(directory, f"{cn}.pem"), os.path.join(directory, f"{cn}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-subj", f"/CN={cn}", "-days", "1", "-keyout", key, "-out", crt],
                   check=True, capture_output=True, timeout=60)
    return crt, key


def client_context():
    """Accepts a self-signed certificate, as `curl -k` does."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def cert_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


# ---------------------------------------------------------------- cluster frames

FRAME_HELLO, FRAME_CHALLENGE, FRAME_AUTH, FRAME_READY = 1, 2, 3, 4
FRAME_OPEN, FRAME_OPENED, FRAME_ERROR = 5, 6, 7
CLUSTER_PROTOCOL = b"tern-cluster/1"


def frame(ftype, *fields):
    """length(u32 BE, type + payload) type(u8) then each field as
    length(u16 BE) bytes (src/cluster/frame.h)."""
    payload = b"".join(struct.pack(">H", len(f)) + f for f in fields)
    return struct.pack(">IB", 1 + len(payload), ftype) + payload


def frame_types(data):
    """The types of the complete frames at the start of data."""
    types = []
    while len(data) >= 5:
        (n,) = struct.unpack(">I", data[:4])
        if n == 0 or len(data) < 4 + n:
            break
        types.append(data[4])
        data = data[4 + n:]
    return types


def imap_over(sock, timeout=IO_TIMEOUT):
    """An imap_helpers.Raw client over an already connected (e.g. TLS)
    socket; reads the greeting."""
    c = Raw.__new__(Raw)
    c.sock, c.timeout, c.buf, c.n = sock, timeout, b"", 0
    c.greeting = c.response()
    return c


# ---------------------------------------------------------------- cluster_tls

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=cwd, timeout=60)


def make_cluster_pki(directory):
    """A cluster CA in directory, one node certificate it signed (for every
    good node) and a self-signed one it did not: {ca, cert, key,
    rogue_cert, rogue_key} paths."""
    d = str(directory)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "1", "-subj", "/CN=tern test cluster CA", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
             "-subj", "/CN=node", cwd=d)
    _openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "node.pem", "-days", "1", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out",
             "rogue.pem", "-days", "1", "-subj", "/CN=rogue", cwd=d)
    return {k: os.path.join(d, f) for k, f in (("ca", "ca.pem"), ("cert", "node.pem"),
                                               ("key", "node.key"), ("rogue_cert", "rogue.pem"),
                                               ("rogue_key", "rogue.key"))}


def cluster_tls_settings(pki, rogue=False):
    """A node's settings for cluster_tls with the certificates of pki."""
    return {"cluster_tls": "yes", "cluster_ca": pki["ca"],
            "tls_cert": pki["rogue_cert" if rogue else "cert"],
            "tls_key": pki["rogue_key" if rogue else "key"]}
