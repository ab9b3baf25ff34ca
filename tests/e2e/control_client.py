"""A client of a node's "control" cluster service (src/cluster/control.h):
it speaks the cluster handshake (docs/cluster.md, "Handshake": HMAC-SHA256
proofs over both nonces and both names), OPENs "control" and then sends
FREEZE / RELEASE / STATUS lines. Every read has a deadline."""

import hashlib
import hmac
import os
import socket
import struct
import time

from cluster_helpers import (CLUSTER_PROTOCOL, FRAME_AUTH, FRAME_CHALLENGE, FRAME_HELLO,
                             FRAME_OPEN, FRAME_OPENED, FRAME_READY, SECRET, frame)
from ternlib import IO_TIMEOUT


def proof(secret, role, dialler_nonce, listener_nonce, dialler_name, listener_name):
    """src/cluster/handshake.c cluster_mac: each part with a u16 length."""
    parts = (CLUSTER_PROTOCOL, role, dialler_nonce, listener_nonce, dialler_name, listener_name)
    msg = b"".join(struct.pack(">H", len(p)) + p for p in parts)
    return hmac.new(secret.encode(), msg, hashlib.sha256).digest()


class Control:
    """Control(addr) -> an authenticated control session on that node."""

    def __init__(self, addr, secret=SECRET, name="test-control", timeout=IO_TIMEOUT):
        self.timeout = timeout
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.buf = b""
        name = name.encode()
        nonce = os.urandom(32)
        self.sock.sendall(frame(FRAME_HELLO, CLUSTER_PROTOCOL, name, nonce))
        ftype, fields = self._frame()
        assert ftype == FRAME_CHALLENGE, f"expected CHALLENGE, got frame {ftype} {fields!r}"
        listener, lnonce, lproof = fields
        assert hmac.compare_digest(lproof, proof(secret, b"listener", nonce, lnonce, name, listener)), \
            "the node's proof is wrong"
        self.node = listener.decode()
        self.sock.sendall(frame(FRAME_AUTH, proof(secret, b"dialler", nonce, lnonce, name, listener)))
        ftype, fields = self._frame()
        assert ftype == FRAME_READY, f"expected READY, got frame {ftype} {fields!r}"
        self.sock.sendall(frame(FRAME_OPEN, b"control", b"", b"", b""))
        ftype, fields = self._frame()
        assert ftype == FRAME_OPENED and fields[0] == b"ok", f"OPEN control: {ftype} {fields!r}"

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"control: no answer in time (have {self.buf!r})")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"control: connection closed (have {self.buf!r})")
        self.buf += chunk

    def _frame(self):
        deadline = time.monotonic() + self.timeout
        while True:
            if len(self.buf) >= 5:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    ftype, payload = self.buf[4], self.buf[5:4 + n]
                    self.buf = self.buf[4 + n:]
                    fields = []
                    while payload:
                        (k,) = struct.unpack(">H", payload[:2])
                        fields.append(payload[2:2 + k])
                        payload = payload[2 + k:]
                    return ftype, fields
            self._fill(deadline)

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        deadline = time.monotonic() + self.timeout
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        out, self.buf = self.buf.split(b"\r\n", 1)
        return out.decode()

    def freeze(self, user, lease_ms):
        return self.cmd(f"FREEZE {user} {int(lease_ms)}")

    def release_stay(self, user):
        return self.cmd(f"RELEASE {user} stay")

    def release_moved(self, user, node, addr):
        return self.cmd(f"RELEASE {user} moved {node} {addr}")

    def status(self, user):
        return self.cmd(f"STATUS {user}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
