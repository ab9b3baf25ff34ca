"""The watchdog watches threads, not only locks: a loop thread stuck in one
callback, or a worker stuck on one piece of work, past watchdog_threshold is
reported once, with what it runs, and again when it comes back; the server
then serves normally.

The stalls are test faults (compiled in unless TERN_TEST_FAULTS=OFF):
TERN_FAULT_LOOP_STALL (=MS) blocks the first IMAP command after a login on its
loop thread, once; TERN_FAULT_APPLY_STALL_MS blocks an apply worker once,
after it took a batch. Every wait polls ternd's log against a deadline."""
import re
import threading

from imap_helpers import Raw, deliver, imap_node
from ternlib import LmtpConn, make_message, unique_subject, wait_for

STALL_MS = 2000
THRESHOLD = "500ms"


def log_match(node, pattern):
    """The first match of pattern in ternd's log, or None."""
    return re.search(pattern, node.stderr_text(), re.M)


def log_count(node, pattern):
    return len(re.findall(pattern, node.stderr_text(), re.M))


def test_stuck_loop_is_reported_with_user_and_command_then_back(make_ternd, monkeypatch):
    monkeypatch.setenv("TERN_FAULT_LOOP_STALL", str(STALL_MS))  # the name issue 8 gives
    # one loop thread: the stalled command holds up every connection
    node = imap_node(make_ternd, worker_threads=1, watchdog_threshold=THRESHOLD)
    subject = deliver(node)
    c = Raw(node).login("alice")
    tag = c.tag()
    c.send(f"{tag} SELECT INBOX\r\n")   # the first command after the login stalls

    stuck = wait_for(lambda: log_match(
        node, r"watchdog: loop 0 stuck for (\d+) ms, running imap user=alice cmd=SELECT$"),
        STALL_MS / 1000 + 3, "the watchdog to report loop 0 stuck in alice's SELECT")
    assert int(stuck.group(1)) >= 500, stuck.group(0)
    back = wait_for(lambda: log_match(node, r"watchdog: loop 0 back after (\d+) ms$"),
                    STALL_MS / 1000 + 5, "the watchdog to see loop 0 come back")
    # from the loop's last heartbeat before the stall to its first after it
    assert STALL_MS - 10 <= int(back.group(1)) <= STALL_MS + 1500, back.group(0)
    stuck_at = node.stderr_text().index(stuck.group(0))
    assert node.stderr_text().index(back.group(0)) > stuck_at
    # once per episode, not once per watchdog tick
    assert log_count(node, r"watchdog: loop 0 stuck for") == 1

    # the stalled command completes, and the server serves normally after
    untagged, tagged = c.wait(tag)
    assert tagged.startswith("OK"), tagged
    assert any(r.startswith(b"* 1 EXISTS") for r in untagged), untagged
    assert c.ok("NOOP") is not None
    with Raw(node).login("bob") as other:
        other.select()
    deliver(node, subject=unique_subject("after"))
    assert subject in node.subjects("alice")
    c.close()
    # only one stall: nothing else was reported
    assert log_count(node, r"watchdog: .* stuck for") == 1


def test_stuck_apply_worker_is_reported_with_its_user_then_back(make_ternd, monkeypatch):
    monkeypatch.setenv("TERN_FAULT_APPLY_STALL_MS", str(STALL_MS))
    node = make_ternd(worker_threads=1, watchdog_threshold=THRESHOLD)
    subject = unique_subject("stalled-apply")
    result = {}

    def deliver_one():
        with LmtpConn(node.lmtp_addr, timeout=15) as c:
            c.lhlo()
            _, result["replies"] = c.deliver("sender@remote.test", ["alice@example.org"],
                                             make_message(subject))

    t = threading.Thread(target=deliver_one)
    t.start()
    try:
        stuck = wait_for(lambda: log_match(
            node, r"watchdog: apply worker (\d+) stuck for (\d+) ms, running .*user=alice\b.*$"),
            STALL_MS / 1000 + 3, "the watchdog to report the apply worker stuck on alice")
        assert "1 item" in stuck.group(0), stuck.group(0)
        worker = stuck.group(1)
        # the loop thread is not stuck meanwhile: LMTP still answers
        with LmtpConn(node.lmtp_addr, timeout=5) as c:
            assert c.cmd("LHLO other.test").code == 250
        back = wait_for(lambda: log_match(
            node, rf"watchdog: apply worker {worker} back after (\d+) ms$"),
            STALL_MS / 1000 + 5, "the watchdog to see the apply worker come back")
        assert STALL_MS - 10 <= int(back.group(1)) <= STALL_MS + 1500, back.group(0)
    finally:
        t.join(15)
    assert not t.is_alive()
    assert [r.code for r in result["replies"]] == [250]
    assert subject in node.subjects("alice")
    assert log_count(node, r"watchdog: apply worker \d+ stuck for") == 1
    assert log_count(node, r"watchdog: loop \d+ stuck for") == 0
