"""ternd's life: SIGTERM ends it cleanly (exit 0) even with clients
connected, without losing a transaction that completes in the grace time."""

import socket
import time

from ternlib import LmtpConn, ConnectionClosed, dot_stuff, make_message, unique_subject, wait_for


def test_sigterm_with_idle_connections_exits_0(make_ternd):
    node = make_ternd(shutdown_timeout="3s")
    silent = socket.create_connection(node.lmtp_addr, timeout=10)  # never says anything
    idle = LmtpConn(node.lmtp_addr)
    idle.lhlo()
    mid = LmtpConn(node.lmtp_addr)
    mid.lhlo()
    mid.expect("MAIL FROM:<a@b.test>", 250)  # a transaction with no recipient yet
    try:
        start = time.monotonic()
        rc = node.terminate()
        assert rc == 0, f"ternd exited {rc} on SIGTERM\n{node.stderr_text()}"
        assert time.monotonic() - start < 15
        for c in (idle, mid):
            data = c.expect_closed(timeout=5)
            assert data == b"" or data.startswith(b"421"), data
    finally:
        silent.close()
        idle.close()
        mid.close()


def test_sigterm_right_after_start(make_ternd):
    node = make_ternd(users=())
    assert node.terminate() == 0


def test_sigterm_lets_transaction_in_flight_finish(make_ternd):
    node = make_ternd(shutdown_timeout="10s")
    subject = unique_subject("inflight")
    body = dot_stuff(make_message(subject)) + b".\r\n"
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        c.expect("MAIL FROM:<a@b.test>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        assert c.cmd("DATA").code == 354
        c.send(body[:50])
        node.proc.send_signal(15)

        def refusing_new_sessions():
            try:
                with LmtpConn(node.lmtp_addr, timeout=2) as other:
                    return other.greeting.code == 421
            except (ConnectionRefusedError, ConnectionClosed, ConnectionResetError):
                return True
        wait_for(refusing_new_sessions, 10, "ternd to stop accepting new sessions after SIGTERM")
        assert node.running(), "ternd exited with a transaction in flight before shutdown_timeout"
        c.send(body[50:])
        r = c.reply()
        assert r.code == 250, r
    wait_for(lambda: not node.running(), 15, "ternd to exit once the transaction ended")
    assert node.proc.returncode == 0
    node.start()
    assert node.subjects("alice").count(subject) == 1


def test_sigterm_gives_up_on_stuck_transaction(make_ternd):
    """A client that stalls mid-DATA must not keep ternd alive past
    shutdown_timeout, and the half message must not be stored."""
    node = make_ternd(shutdown_timeout="1s")
    subject = unique_subject("stuck")
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        c.expect("MAIL FROM:<a@b.test>", 250)
        c.expect("RCPT TO:<alice@example.org>", 250)
        assert c.cmd("DATA").code == 354
        c.send(make_message(subject)[:60])
        start = time.monotonic()
        rc = node.terminate()
        elapsed = time.monotonic() - start
        assert rc == 0, f"exit {rc}\n{node.stderr_text()}"
        assert elapsed < 10, f"ternd took {elapsed:.1f}s with shutdown_timeout = 1s"
    node.start()
    assert subject not in node.subjects("alice")
