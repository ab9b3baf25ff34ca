"""Cluster cases beyond the main proxy tests (test_cluster_proxy.py):
commands a client pipelines behind its LOGIN reach the home node in order;
the cluster channel over TLS (cluster_tls) works between nodes whose
certificates the cluster CA signed and refuses a node whose certificate it
did not; the home node decides POP3's maildrop lock, whichever fronts two
sessions come through."""

import re
import time

import pytest

from cluster_helpers import Pop3, cluster_factory, cluster_tls_settings, make_cluster_pki
from imap_helpers import Raw
from ternlib import IO_TIMEOUT, PASSWORD, LmtpConn


@pytest.fixture
def make_cluster(tmp_path):
    yield from cluster_factory(tmp_path)


def imap_raw(cl, front):
    return Raw(cl.imap_addr(front))


def test_commands_pipelined_behind_login_reach_the_home(make_cluster):
    """A client may send commands right behind its LOGIN without waiting
    (RFC 3501 §5.5 allows it once the login is answered, and clients do
    it). The front must hand every byte it has not consumed to the home,
    in order: the SELECT and FETCH here are answered by the home node."""
    cl = make_cluster()
    subject, raw = cl.deliver_at_home("alice")
    c = imap_raw(cl, "node-b")
    try:
        c.send(f'a1 LOGIN alice "{PASSWORD}"\r\na2 SELECT INBOX\r\n'
               "a3 FETCH 1 (BODY.PEEK[])\r\na4 LOGOUT\r\n")
        text = bytes(c.buf) if isinstance(c.buf, (bytes, bytearray)) else c.buf.encode()
        while b"a4 OK" not in text:
            chunk = c.sock.recv(65536)
            assert chunk, f"closed early: {text[-300:]!r}"
            text += chunk
        for tag in (b"a1 OK", b"a2 OK", b"a3 OK", b"a4 OK"):
            assert tag in text, text[-500:]
        assert text.index(b"a1 OK") < text.index(b"a2 OK") < text.index(b"a3 OK")
        assert raw in text
        assert b"* 1 EXISTS" in text
    finally:
        c.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_cluster_pki(tmp_path_factory.mktemp("pki"))


def test_cluster_tls_between_nodes_of_the_ca(make_cluster, pki):
    """With cluster_tls every node-to-node connection is TLS, and the
    proxy, the relay and IDLE work over it as in clear."""
    names = ("node-a", "node-b")
    cl = make_cluster(users={"alice": "node-a", "bob": "node-b"}, names=names,
                      node_settings={n: cluster_tls_settings(pki) for n in names})
    with LmtpConn(cl.lmtp_addr("node-b"), timeout=IO_TIMEOUT) as c:
        c.lhlo()
        assert c.cmd("MAIL FROM:<s@remote.test>").code == 250
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        assert c.cmd("RCPT TO:<bob@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: over tls\r\n\r\nsecret body\r\n.\r\n")
        assert [c.reply().code, c.reply().code] == [250, 250]
    cl.find("alice", "over tls")      # exactly one copy, at its home
    m = imap_raw(cl, "node-b").login()
    try:
        m.ok("SELECT INBOX")
        fetched = b"".join(u if isinstance(u, bytes) else str(u).encode()
                           for u in m.ok("FETCH 1 BODY.PEEK[TEXT]"))
        assert b"secret body" in fetched, fetched
    finally:
        m.close()
    for name in names:
        assert "cluster_tls: node-to-node connections use TLS" in cl.log(name)
    assert re.search(r"proxy: user=<alice> front=node-b home=node-a", cl.log("node-b"))


def test_cluster_tls_refuses_a_node_the_ca_did_not_sign(make_cluster, pki):
    """node-x has the cluster secret but a certificate of its own making:
    it gets no session and relays no delivery to node-a, and node-a's
    users elsewhere are unaffected."""
    names = ("node-a", "node-x")
    cl = make_cluster(users={"alice": "node-a", "xavier": "node-x"}, names=names,
                      node_settings={"node-a": cluster_tls_settings(pki),
                                     "node-x": cluster_tls_settings(pki, rogue=True)})
    cl.expect_outage_errors("node-a", "node-x")
    m = imap_raw(cl, "node-x")
    try:
        _, tagged = m.cmd(f'LOGIN alice "{PASSWORD}"')
        assert tagged.startswith("NO [UNAVAILABLE]"), tagged
    finally:
        m.close()
    with LmtpConn(cl.lmtp_addr("node-x"), timeout=IO_TIMEOUT) as c:
        c.lhlo()
        assert c.cmd("MAIL FROM:<s@remote.test>").code == 250
        assert c.cmd("RCPT TO:<alice@example.org>").code == 250
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: from rogue\r\n\r\nx\r\n.\r\n")
        r = c.reply()
        assert r.code == 451 and "4.4.1" in r.text, r
    assert not [m for m in cl.messages("alice") if m.get("subject") == "from rogue"]
    assert re.search(r"cluster: rip=127\.0\.0\.1: TLS handshake failed: certificate verify failed",
                     cl.log("node-a"))
    assert re.search(r"cluster: node node-a at \S+ unreachable: (TLS|connection closed)",
                     cl.log("node-x"))


def test_pop3_maildrop_lock_is_the_home_nodes(make_cluster):
    """Two POP3 sessions of one user through two different fronts: the
    second is refused with [IN-USE] by the home node (the lock lives where
    the maildrop does), and once the first quits the maildrop is free."""
    cl = make_cluster()
    cl.deliver_at_home("alice")
    first = Pop3(cl.pop3_addr("node-b"))
    second = Pop3(cl.pop3_addr("node-c"))
    try:
        first.ok("USER alice")
        first.ok(f"PASS {PASSWORD}")
        second.ok("USER alice")
        reply = second.cmd(f"PASS {PASSWORD}")
        assert reply.startswith("-ERR [IN-USE]"), reply
        first.ok("QUIT")
        second.ok("USER alice")
        assert second.cmd(f"PASS {PASSWORD}").startswith("+OK")
        second.ok("QUIT")
    finally:
        first.close()
        second.close()


def test_front_stopping_ends_proxied_sessions_cleanly(make_cluster):
    """SIGTERM on a front node with a proxied session in IDLE: the client
    gets `* BYE [UNAVAILABLE]` (at a line boundary: the relay knows where it
    is in the stream), the front exits 0 without waiting out
    shutdown_timeout, and the home node, which kept the user's session,
    notices and serves the user again through another front at once."""
    cl = make_cluster(shutdown_timeout="20s")
    c = imap_raw(cl, "node-b").login()
    try:
        c.ok("SELECT INBOX")
        c.send(f"{c.tag()} IDLE\r\n")
        first = c.response()
        assert first.startswith(b"+"), first
        t0 = time.monotonic()
        cl.stop("node-b")                    # exit 0 asserted inside
        took = time.monotonic() - t0
        assert took < 10, f"the front took {took:.1f} s to stop (shutdown_timeout is 20 s)"
        rest = c.buf
        deadline = time.monotonic() + IO_TIMEOUT
        while time.monotonic() < deadline:
            try:
                chunk = c.sock.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            rest += chunk
        assert b"* BYE [UNAVAILABLE]" in rest, rest
    finally:
        c.close()
    m = imap_raw(cl, "node-c").login()
    try:
        m.ok("SELECT INBOX")
    finally:
        m.close()
