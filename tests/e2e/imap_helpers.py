"""Helpers for the IMAP end-to-end tests: a node with IMAP on a free loopback
port, LMTP delivery, imaplib logins, and a raw IMAP client whose every read
has a deadline and which parses responses (literals included) into Python
values, so a test can check exactly what the server said."""

import imaplib
import re
import socket
import time

from ternlib import IO_TIMEOUT, PASSWORD, LmtpConn, free_port, make_message, unique_subject

SENDER = "sender@remote.test"


def imap_node(make_ternd, users=("alice", "bob"), **settings):
    """A started node with imap_listen on a free loopback port (and POP3 too
    when pop3=True)."""
    if settings.pop("pop3", False):
        settings["pop3_listen"] = f"127.0.0.1:{free_port()}"
    settings.setdefault("auth_failure_delay", "50ms")
    return make_ternd(imap_listen=f"127.0.0.1:{free_port()}", users=users, **settings)


def imap_addr(node):
    host, port = node.settings["imap_listen"].rsplit(":", 1)
    return host, int(port)


def pop3_addr(node):
    host, port = node.settings["pop3_listen"].rsplit(":", 1)
    return host, int(port)


def deliver(node, user="alice", subject=None, body="Hello from the Tern test suite.\r\n",
            raw=None, extra_headers=()):
    """Delivers one message over LMTP (raw bytes, or one built from subject and
    body); returns the subject (None for raw)."""
    if raw is None:
        subject = subject or unique_subject("imap")
        raw = make_message(subject, body=body, to=f"{user}@example.org",
                           extra_headers=extra_headers)
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        _, replies = c.deliver(SENDER, [f"{user}@example.org"], raw)
        assert [r.code for r in replies] == [250], replies
    return subject


def deliver_many(node, count, user="alice", tag="bulk"):
    """count deliveries over one LMTP connection; returns their subjects."""
    subjects = []
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        for i in range(count):
            s = unique_subject(f"{tag}{i}")
            _, replies = c.deliver(SENDER, [f"{user}@example.org"],
                                   make_message(s, to=f"{user}@example.org"))
            assert [r.code for r in replies] == [250], replies
            subjects.append(s)
    return subjects


def login(node, user="alice", password=PASSWORD):
    m = imaplib.IMAP4(*imap_addr(node), timeout=IO_TIMEOUT)
    m.login(user, password)
    return m


def ok(result):
    """imaplib (typ, data): asserts OK and returns data."""
    typ, data = result
    assert typ == "OK", f"expected OK, got {typ} {data!r}"
    return data


# ------------------------------------------------------------ response parser

class Atom(str):
    """An unquoted atom (NIL comes back as None, strings as bytes)."""


_ATOM_END = b" ()\r\n"


def parse_sexp(data, pos=0, end=None):
    """Parses a sequence of IMAP values from data[pos:end] (literals already
    inlined as b"{n}\\r\\n<n bytes>"). Returns a list: Atom for atoms (brackets
    such as BODY[HEADER.FIELDS (A B)]<0> kept inside one atom), bytes for
    quoted strings and literals, None for NIL, lists for parenthesised lists."""
    items, pos = _parse_seq(data, pos, end if end is not None else len(data), top=True)
    return items


def _parse_seq(data, pos, end, top):
    items = []
    while pos < end:
        c = data[pos:pos + 1]
        if c == b" ":
            pos += 1
        elif c == b"(":
            sub, pos = _parse_seq(data, pos + 1, end, top=False)
            items.append(sub)
        elif c == b")":
            assert not top, f"unbalanced ')' at {pos} in {data!r}"
            return items, pos + 1
        elif c == b'"':
            out = bytearray()
            pos += 1
            while True:
                assert pos < end, f"unterminated quoted string in {data!r}"
                ch = data[pos:pos + 1]
                if ch == b"\\":
                    out += data[pos + 1:pos + 2]
                    pos += 2
                elif ch == b'"':
                    pos += 1
                    break
                else:
                    out += ch
                    pos += 1
            items.append(bytes(out))
        elif c in (b"{", b"~") and re.match(rb"~?\{\d+\+?\}\r\n", data[pos:pos + 40]):
            m = re.match(rb"~?\{(\d+)\+?\}\r\n", data[pos:])
            n = int(m.group(1))
            start = pos + m.end()
            items.append(bytes(data[start:start + n]))
            pos = start + n
        else:
            start = pos
            depth = 0
            while pos < end:
                ch = data[pos:pos + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth == 0 and ch in (b" ", b"(", b")"):
                    break
                pos += 1
            word = data[start:pos].decode("utf-8", errors="replace")
            items.append(None if word.upper() == "NIL" else Atom(word))
    assert top, f"unbalanced '(' in {data!r}"
    return items, pos


def fetch_dict(resp):
    """b'* 3 FETCH (UID 7 FLAGS (\\Seen))' -> (3, {'UID': '7', 'FLAGS': [...]}).
    Keys are uppercased; values as parse_sexp gives them."""
    m = re.match(rb"\* (\d+) FETCH ", resp)
    assert m, f"not a FETCH response: {resp[:200]!r}"
    items = parse_sexp(resp, m.end())
    assert len(items) == 1 and isinstance(items[0], list), f"bad FETCH response {resp[:300]!r}"
    lst = items[0]
    assert len(lst) % 2 == 0, f"odd FETCH item list {lst!r}"
    return int(m.group(1)), {str(lst[i]).upper(): lst[i + 1] for i in range(0, len(lst), 2)}


# ------------------------------------------------------------ raw client

class Closed(AssertionError):
    pass


class Raw:
    """A raw IMAP client. Every read has a deadline; a response with literals
    comes back as one bytes value with the literals inlined."""

    def __init__(self, node_or_addr, timeout=IO_TIMEOUT, greeting=True):
        addr = imap_addr(node_or_addr) if not isinstance(node_or_addr, tuple) else node_or_addr
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.n = 0
        self.greeting = self.response() if greeting else None

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

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no complete response within the deadline (have {self.buf[:300]!r})")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            raise Closed(f"server closed the connection (pending {self.buf[:300]!r})")
        self.buf += chunk

    def response(self, timeout=None):
        """One response line (without CRLF) with its literals inlined."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill(deadline)
            line, self.buf = self.buf.split(b"\r\n", 1)
            out += line
            m = re.search(rb"~?\{(\d+)\}$", line)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill(deadline)
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]

    def poll(self, timeout):
        """A response if one arrives within timeout, else None."""
        try:
            return self.response(timeout)
        except Closed:
            raise
        except AssertionError:
            return None

    def tag(self):
        self.n += 1
        return f"T{self.n}"

    def cmd(self, text, timeout=None):
        """Sends '<tag> text' and reads to its tagged response: returns
        (untagged responses, tagged line without the tag)."""
        t = self.tag()
        self.send((t.encode() if isinstance(text, bytes) else t) +
                  (b" " + text if isinstance(text, bytes) else " " + text) +
                  (b"\r\n" if isinstance(text, bytes) else "\r\n"))
        return self.wait(t, timeout)

    def wait(self, tag, timeout=None):
        untagged = []
        prefix = tag.encode() + b" "
        while True:
            r = self.response(timeout)
            if r.startswith(prefix):
                return untagged, r[len(prefix):].decode("utf-8", errors="replace")
            untagged.append(r)

    def ok(self, text, timeout=None):
        """cmd() that must end in a tagged OK; returns the untagged responses."""
        untagged, tagged = self.cmd(text, timeout)
        assert tagged.startswith("OK"), f"{text!r}: expected OK, got {tagged!r} after {untagged!r}"
        return untagged

    def login(self, user="alice", password=PASSWORD):
        self.ok(f'LOGIN {user} "{password}"')
        return self

    def cmd_literal(self, head, literal, tail=b"", plus=False):
        """'<tag> head {n}' CRLF literal tail CRLF; waits for '+' unless plus."""
        t = self.tag()
        if isinstance(head, str):
            head = head.encode()
        if isinstance(tail, str):
            tail = tail.encode()
        marker = b"{%d+}" % len(literal) if plus else b"{%d}" % len(literal)
        self.send(t.encode() + b" " + head + b" " + marker + b"\r\n")
        if not plus:
            r = self.response()
            if not r.startswith(b"+"):
                # refused: this is the tagged reply
                assert r.startswith(t.encode() + b" "), f"expected '+' or tagged reply, got {r!r}"
                return [], r[len(t) + 1:].decode(errors="replace")
        self.send(literal + tail + b"\r\n")
        return self.wait(t)

    def expect_closed(self, timeout=None):
        """Reads until the server closes; returns what it sent meanwhile."""
        deadline = time.monotonic() + (timeout or self.timeout)
        got = self.buf
        self.buf = b""
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"server did not close the connection (got {got[-500:]!r})"
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

    # --------- conveniences
    def select(self, folder="INBOX", extra=""):
        return self.ok(f"SELECT {folder}{extra}")

    def fetch(self, what, items, uid=False):
        """{seq: dict} for FETCH responses (merged when several per message)."""
        untagged = self.ok(f"{'UID ' if uid else ''}FETCH {what} {items}")
        out = {}
        for r in untagged:
            if re.match(rb"\* \d+ FETCH ", r):
                seq, d = fetch_dict(r)
                out.setdefault(seq, {}).update(d)
        return out

    def search(self, criteria, uid=False):
        """Numbers from the '* SEARCH' response, as a list of ints."""
        untagged = self.ok(f"{'UID ' if uid else ''}SEARCH {criteria}")
        lines = [r for r in untagged if r.startswith(b"* SEARCH")]
        assert len(lines) == 1, f"expected one * SEARCH response, got {untagged!r}"
        return [int(x) for x in lines[0].split()[2:]]


def status_of(untagged):
    """{item: int} from one * STATUS response."""
    rs = [r for r in untagged if r.startswith(b"* STATUS ")]
    assert len(rs) == 1, untagged
    items = parse_sexp(rs[0], len(b"* STATUS "))
    lst = items[-1]
    return {str(lst[i]).upper(): int(lst[i + 1]) for i in range(0, len(lst), 2)}


def untagged_matching(untagged, pattern):
    return [r for r in untagged if re.match(pattern, r)]


def resp_code(untagged, code):
    """The text after [CODE ...] in an untagged OK among untagged, or None."""
    for r in untagged:
        m = re.match(rb"\* OK \[" + code.encode() + rb"(?: ([^\]]*))?\]", r)
        if m:
            return (m.group(1) or b"").decode()
    return None


def capabilities(untagged_or_line):
    if isinstance(untagged_or_line, list):
        lines = [r for r in untagged_or_line if r.upper().startswith(b"* CAPABILITY ")]
        assert lines, f"no CAPABILITY response in {untagged_or_line!r}"
        line = lines[0][len(b"* CAPABILITY "):]
    else:
        line = untagged_or_line
    return set(line.decode().upper().split())


def unique(tag="imap"):
    return unique_subject(tag)
