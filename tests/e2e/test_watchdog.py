"""The watchdog reports a lock held too long, with where it was taken, and the
server keeps serving meanwhile (STYLE.md P9). The stall is injected with
TERN_FAULT_JOURNAL_STALL_MS, which holds the delivery journal lock once."""
import threading

from ternlib import LmtpConn, make_message, unique_subject, wait_for

SENDER = "sender@remote.test"


def test_stalled_journal_lock_is_reported_and_server_keeps_serving(make_ternd, monkeypatch):
    monkeypatch.setenv("TERN_FAULT_JOURNAL_STALL_MS", "1500")
    node = make_ternd(watchdog_threshold="200ms")
    subject = unique_subject("stalled")
    result = {}

    def deliver():
        with LmtpConn(node.lmtp_addr, timeout=10) as c:
            c.lhlo()
            _, result["replies"] = c.deliver(SENDER, ["alice@example.org"], make_message(subject))

    t = threading.Thread(target=deliver)
    t.start()
    wait_for(lambda: "watchdog: lock 'delivery journal' held for" in node.stderr_text(), 5,
             "the watchdog to report the stalled journal lock")
    line = next(l for l in node.stderr_text().splitlines() if "watchdog: lock" in l)
    assert "delivery.c:" in line, line          # where the lock was taken
    # While the committer is stalled, other connections are still served.
    with LmtpConn(node.lmtp_addr, timeout=5) as c:
        assert c.cmd("LHLO other.test").code == 250
        assert c.cmd("NOOP").code == 250
    t.join(10)
    assert not t.is_alive()
    assert [r.code for r in result["replies"]] == [250]
    assert subject in node.subjects("alice")
