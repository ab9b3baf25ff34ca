"""Helpers for Tern's end-to-end tests: start ternd on loopback ports, run
ternctl, speak raw LMTP, and wait for conditions against a deadline (never a
bare sleep)."""

import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid

TERND = os.environ.get("TERND", "/work/main/build/ternd")
TERNCTL = os.environ.get("TERNCTL", "/work/main/build/ternctl")

# Every wait in the suite is bounded; these are the usual bounds.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
IO_TIMEOUT = 15.0
CMD_TIMEOUT = 30.0

DEFAULT_FOLDERS = ("INBOX", "Sent", "Drafts", "Trash", "Junk")
PASSWORD = "correct horse battery staple"
# SHA-512 crypt of PASSWORD (openssl passwd -6): `user add --hash` skips the
# slow password hashing in the many tests that only need a mailbox.
PASSWORD_HASH = ("$6$ternteststaplesa$NiolGGyQ5EiEYPlWwpmGopMHMuFD2yFswtfK4ZkCBHg0nN0wMl"
                 "zfIlhSDvNaslbVNz6USyuBY1DPkstN.jpJg1")


_PORTS_GIVEN = set()


def free_port():
    """A loopback TCP port nobody listens on right now (bind 0, close), and
    never one this process handed out before: the kernel may give a port it
    just freed again, and a node asking for an IMAP and a POP3 port then got
    the same one twice."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(port)
            return port


def wait_for(cond, timeout, what, interval=0.02, retry_on=(OSError,)):
    """Polls cond() until it returns something truthy and returns that.
    Exceptions in retry_on mean "not yet" (e.g. connection refused); any
    other exception ends the wait at once. Fails naming `what` once `timeout`
    seconds have passed."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = cond()
            if value:
                return value
        except retry_on as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def unique_subject(tag="msg"):
    return f"{tag} {uuid.uuid4().hex}"


def make_message(subject, body="Hello from the Tern test suite.\r\n", sender="sender@remote.test",
                 to="alice@example.org", extra_headers=()):
    """An RFC 5322 message as bytes with CRLF line ends."""
    msgid = f"<{uuid.uuid4().hex}@tests.tern>"
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: {msgid}",
        "Date: Mon, 01 Jan 2024 12:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        *extra_headers,
    ]
    head = "\r\n".join(lines) + "\r\n\r\n"
    if isinstance(body, str):
        body = body.encode()
    return head.encode() + body


def normalize_eol(data):
    return data.replace(b"\r\n", b"\n")


def split_added_headers(raw, count=2):
    """Returns ([(name, value)] of the first `count` header fields, rest bytes)."""
    fields = []
    rest = raw
    for _ in range(count):
        m = re.match(rb"([A-Za-z-]+):[ \t]*(.*?)\r?\n", rest)
        assert m, f"expected a header field at the top of the stored message, got {rest[:200]!r}"
        fields.append((m.group(1).decode(), m.group(2).decode()))
        rest = rest[m.end():]
    return fields, rest


# ---------------------------------------------------------------- ternctl

class TernctlError(AssertionError):
    pass


def ternctl(config, *args, input=None, check=True, as_json=False, timeout=CMD_TIMEOUT):
    """Runs ternctl --config CONFIG [--json] ARGS. With check, a non-zero exit
    fails the test showing stderr. Returns the CompletedProcess (bytes), or
    the parsed JSON with as_json."""
    cmd = [TERNCTL, "--config", str(config)]
    if as_json:
        cmd.append("--json")
    cmd += [str(a) for a in args]
    if isinstance(input, str):
        input = input.encode()
    proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise TernctlError(f"{' '.join(cmd)} exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    if as_json and check:
        try:
            return json.loads(proc.stdout)
        except ValueError as exc:
            raise TernctlError(f"{' '.join(cmd)} printed invalid JSON ({exc}): {proc.stdout[:500]!r}")
    return proc


def message_list(items):
    """`mailbox list --json` gives the messages; accept a bare array or an
    object holding one array."""
    if isinstance(items, dict):
        arrays = [v for v in items.values() if isinstance(v, list)]
        assert len(arrays) == 1, f"cannot find the message array in {items!r}"
        items = arrays[0]
    assert isinstance(items, list), f"mailbox list --json did not give an array: {items!r}"
    return items


def listening(port):
    """Whether some socket on this host listens on TCP port (from /proc)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


# ---------------------------------------------------------------- ternd

class Ternd:
    """One ternd node: a config file and a data_dir under `workdir`, LMTP on a
    free loopback port. Each start() writes a fresh stderr log file."""

    def __init__(self, workdir, settings=None):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.data_dir = os.path.join(workdir, "data")
        self.config_path = os.path.join(workdir, "ternd.conf")
        self.settings = {
            "node_name": "node1",
            "data_dir": self.data_dir,
            "domains": "example.org",
            "lmtp_listen": None,  # filled with a free port at each start
            "imap_listen": "",
            "pop3_listen": "",
            "admin_listen": "",
            "log_level": "info",
            "max_message_size": "1M",
            "shutdown_timeout": "5s",
        }
        self.settings.update(settings or {})
        self.proc = None
        self.runs = []          # [(Popen, stderr path, killed_on_purpose)]
        self.expected_errors = []
        self.preexec_fn = None
        self.extra_env = {}     # added to the environment of the next start()s
        self.lmtp_port = None

    # -- configuration
    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write("# written by tests/e2e\n")
            for key, value in self.settings.items():
                if value is not None:
                    f.write(f"{key} = {value}\n")

    @property
    def lmtp_addr(self):
        return ("127.0.0.1", self.lmtp_port)

    def mail_db(self, user):
        return os.path.join(self.data_dir, "mail", f"{user}.db")

    # -- process control
    def start(self, new_port=True):
        assert self.proc is None or self.proc.poll() is not None, "ternd already running"
        if new_port or self.lmtp_port is None:
            self.lmtp_port = free_port()
        self.settings["lmtp_listen"] = f"127.0.0.1:{self.lmtp_port}"
        self.write_config()
        stderr_path = os.path.join(self.workdir, f"ternd-{len(self.runs) + 1}.stderr")
        with open(stderr_path, "wb") as err, open(os.devnull, "rb") as devnull:
            self.proc = subprocess.Popen([TERND, "--config", self.config_path],
                                         stdin=devnull, stdout=err, stderr=err,
                                         preexec_fn=self.preexec_fn,
                                         env={**os.environ, **self.extra_env} if self.extra_env
                                         else None)
        self.runs.append([self.proc, stderr_path, False])
        proc = self.proc

        class Exited(Exception):
            pass

        # Every listener, not LMTP alone: they are opened one after another,
        # and a test that connects to IMAP at once must not race the bind.
        # Checked in /proc, so no connection shows up in ternd's log.
        ports = [int(v.rsplit(":", 1)[1]) for k, v in self.settings.items()
                 if k.endswith("_listen") and k != "lmtp_listen" and v and ":" in str(v)]

        def ready():
            if proc.poll() is not None:
                raise Exited()
            with socket.create_connection(self.lmtp_addr, timeout=1):
                pass
            return all(listening(p) for p in ports)
        try:
            wait_for(ready, START_TIMEOUT, f"ternd to accept LMTP connections on port {self.lmtp_port}")
        except Exited:
            raise AssertionError(f"ternd exited with {proc.returncode} during start:\n"
                                 + self.stderr_text()) from None
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nternd stderr:\n{self.stderr_text()}") from None
        return self

    def kill(self):
        """SIGKILL, as a crash would; the exit status is not checked."""
        self.runs[-1][2] = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)

    def terminate(self):
        """SIGTERM and wait (bounded). Returns the exit status, or None if
        ternd was still running after STOP_TIMEOUT (it is then killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.runs[-1][2] = True
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
            return None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- logs
    def stderr_text(self, run=-1):
        if not self.runs:
            return ""
        with open(self.runs[run][1], "rb") as f:
            return f.read().decode(errors="replace")

    def all_stderr(self):
        return "".join(self.stderr_text(i) for i in range(len(self.runs)))

    def expect_error(self, pattern):
        """Declares that a log line with ': error:' matching `pattern` (regex)
        is part of the test, not a bug."""
        self.expected_errors.append(re.compile(pattern))

    def unexpected_error_lines(self):
        lines = []
        for line in self.all_stderr().splitlines():
            if ": error:" in line and not any(p.search(line) for p in self.expected_errors):
                lines.append(line)
        return lines

    def teardown_problems(self):
        """Stops ternd with SIGTERM and lists what went wrong: a non-zero or
        missing exit status, and unexpected error log lines."""
        problems = []
        if self.running():
            killed_before = self.runs[-1][2]
            rc = self.terminate()
            if rc is None:
                problems.append(f"{self.workdir}: ternd did not exit within {STOP_TIMEOUT}s of SIGTERM")
            elif rc != 0 and not killed_before:
                problems.append(f"{self.workdir}: ternd exited {rc} on SIGTERM (expected 0)")
        else:
            for proc, path, killed in self.runs:
                if not killed and proc.returncode not in (0, None):
                    problems.append(f"{path}: ternd exited {proc.returncode} on its own")
        errors = self.unexpected_error_lines()
        if errors:
            problems.append("unexpected error lines in ternd's log:\n  " + "\n  ".join(errors))
        return problems

    # -- convenience
    def ctl(self, *args, **kwargs):
        return ternctl(self.config_path, *args, **kwargs)

    def add_user(self, name, password=None):
        """With a password, through --password-stdin; else --hash."""
        if password is None:
            self.ctl("user", "add", name, "--hash", PASSWORD_HASH)
        else:
            self.ctl("user", "add", name, "--password-stdin", input=password + "\n")

    def messages(self, user, folder="INBOX"):
        return message_list(self.ctl("mailbox", "list", user, folder, as_json=True))

    def subjects(self, user, folder="INBOX"):
        return [m.get("subject") for m in self.messages(user, folder)]

    def cat(self, user, folder, uid):
        return self.ctl("mailbox", "cat", user, folder, uid).stdout

    def find(self, user, folder, subject):
        """The stored raw message with this subject; fails unless exactly one."""
        found = [m for m in self.messages(user, folder) if m.get("subject") == subject]
        assert len(found) == 1, (f"expected exactly one message with subject {subject!r} in "
                                 f"{user}/{folder}, found {len(found)}")
        return self.cat(user, folder, found[0]["uid"])


# ---------------------------------------------------------------- raw LMTP

class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines

    @property
    def text(self):
        return "\n".join(self.lines)

    def enhanced(self):
        """The enhanced status code of the last line ("5.1.1"), or ""."""
        m = re.match(r"\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b", self.lines[-1])
        return m.group(1) if m else ""

    def __repr__(self):
        return f"Reply({self.text!r})"


class ConnectionClosed(AssertionError):
    pass


class LmtpConn:
    """A raw LMTP client: every read has a deadline; replies are read one at a
    time so a test can ask for exactly one reply per recipient."""

    def __init__(self, addr, timeout=IO_TIMEOUT, read_greeting=True):
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.reply() if read_greeting else None

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
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _readline(self):
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no complete reply line within {self.timeout}s (have {self.buf!r})")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionClosed(f"server closed the connection (pending {self.buf!r})")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        assert line.endswith(b"\r"), f"reply line not terminated by CRLF: {line!r}"
        return line[:-1].decode("utf-8", errors="replace")

    def reply(self):
        lines = []
        while True:
            line = self._readline()
            assert re.match(r"\d{3}[ -]", line) or re.fullmatch(r"\d{3}", line), f"malformed reply line {line!r}"
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                code = int(line[:3])
                assert all(l[:3] == line[:3] for l in lines), f"mixed codes in one reply: {lines!r}"
                return Reply(code, lines)

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def expect(self, line, code):
        r = self.cmd(line)
        assert r.code == code, f"{line!r}: expected {code}, got {r!r}"
        return r

    def lhlo(self, name="client.test"):
        return self.expect(f"LHLO {name}", 250)

    def data(self, message, nrcpt):
        """DATA with dot-stuffing; returns the nrcpt replies after the dot."""
        r = self.cmd("DATA")
        assert r.code == 354, f"DATA: expected 354, got {r!r}"
        self.send(dot_stuff(message) + b".\r\n")
        return self.replies(nrcpt)

    def deliver(self, sender, rcpts, message):
        """One DATA transaction; returns (RCPT replies, DATA replies)."""
        self.expect(f"MAIL FROM:<{sender}>", 250)
        rcpt_replies = [self.cmd(f"RCPT TO:<{r}>") for r in rcpts]
        accepted = sum(1 for r in rcpt_replies if r.code == 250)
        return rcpt_replies, self.data(message, accepted) if accepted else []

    def expect_closed(self, timeout=None):
        """Asserts the server closes the connection (EOF or reset) within the
        deadline; returns any bytes it sent first."""
        deadline = time.monotonic() + (timeout or self.timeout)
        received = self.buf
        self.buf = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"server did not close the connection (got {received!r})")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return received
            if not chunk:
                return received
            received += chunk


def dot_stuff(message):
    """CRLF line ends, a leading '.' doubled, and a final CRLF."""
    if isinstance(message, str):
        message = message.encode()
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    lines = message.split(b"\r\n")[:-1]
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)
