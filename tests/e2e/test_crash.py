"""Crash safety of delivery: SIGKILL ternd in the middle of a burst from 8
concurrent LMTP clients; after a restart every message that got 250 is in
its mailbox exactly once and every store passes PRAGMA integrity_check."""

import collections
import os
import subprocess
import threading
import uuid

import pytest

from ternlib import LmtpConn, make_message, unique_subject, wait_for

USERS = ("alice", "bob")
THREADS = 8


def integrity(path):
    proc = subprocess.run(["sqlite3", path, "PRAGMA integrity_check"], capture_output=True, timeout=60)
    return proc.stdout.decode().strip() + proc.stderr.decode().strip()


class Burst:
    """THREADS clients, each on its own connection, delivering one message
    after another (alternating users) until stopped."""

    def __init__(self, node, tag):
        self.node = node
        self.tag = tag
        self.lock = threading.Lock()
        self.sent = {}       # subject -> user, recorded before the message goes out
        self.acked = {}      # subject -> user, recorded after its 250
        self.errors = []     # anything unexpected before the kill
        self.killing = threading.Event()
        self.threads = [threading.Thread(target=self.worker, args=(i,), daemon=True)
                        for i in range(THREADS)]

    def start(self):
        for t in self.threads:
            t.start()

    def worker(self, i):
        n = 0
        try:
            with LmtpConn(self.node.lmtp_addr, timeout=20) as c:
                c.lhlo()
                while not self.killing.is_set():
                    user = USERS[(i + n) % len(USERS)]
                    subject = f"crash {self.tag} t{i} n{n} {uuid.uuid4().hex}"
                    with self.lock:
                        self.sent[subject] = user
                    _, data = c.deliver("burst@remote.test", [f"{user}@example.org"],
                                        make_message(subject, to=f"{user}@example.org"))
                    if [r.code for r in data] == [250]:
                        with self.lock:
                            self.acked[subject] = user
                    elif not self.killing.is_set():
                        self.errors.append(f"t{i}: unexpected replies {data!r}")
                        return
                    n += 1
        except (OSError, AssertionError) as exc:
            if not self.killing.is_set():
                self.errors.append(f"t{i}: {exc!r}")

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def join(self):
        for t in self.threads:
            t.join(timeout=30)
            assert not t.is_alive(), "a client thread is stuck after ternd was killed"


@pytest.mark.parametrize("kill_after", [50, 200, 400])
def test_sigkill_mid_burst_loses_and_duplicates_nothing(make_ternd, kill_after):
    node = make_ternd(max_connections=64)
    burst = Burst(node, kill_after)
    burst.start()
    try:
        wait_for(lambda: burst.acked_count() >= kill_after or burst.errors, 90,
                 f"{kill_after} acknowledged deliveries")
        assert not burst.errors, burst.errors
    finally:
        burst.killing.set()
        node.kill()
        burst.join()

    node.start()  # same data_dir
    total = 0
    for user in USERS:
        subjects = node.subjects(user)
        counts = collections.Counter(subjects)
        acked = [s for s, u in burst.acked.items() if u == user]
        missing = [s for s in acked if counts[s] == 0]
        dups = [s for s, k in counts.items() if k > 1]
        strays = [s for s in counts if burst.sent.get(s) != user]
        assert not missing, f"{len(missing)} acknowledged messages lost for {user}: {missing[:5]}"
        assert not dups, f"duplicated messages for {user}: {dups[:5]}"
        assert not strays, f"messages in {user}'s mailbox that were never sent to {user}: {strays[:5]}"
        assert integrity(node.mail_db(user)) == "ok"
        total += len(acked)
    assert total >= kill_after
    assert integrity(node.data_dir + "/directory.db") == "ok"

    # The restarted node keeps delivering.
    subject = unique_subject("after-crash")
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        _, data = c.deliver("a@b.test", ["alice@example.org"], make_message(subject))
        assert [r.code for r in data] == [250]
    assert node.subjects("alice").count(subject) == 1


def test_expunged_and_moved_messages_stay_gone_after_a_crash(make_ternd):
    """A crash replays the delivery journal: a message the user expunged or
    moved since it arrived must not come back, nor appear twice."""
    import imaplib

    from imap_helpers import imap_addr, imap_node
    from ternlib import PASSWORD
    node = imap_node(make_ternd)
    subjects = [unique_subject("replay") for _ in range(4)]
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        for s in subjects:
            _, replies = c.deliver("x@remote.test", ["alice@example.org"],
                                   make_message(s, to="alice@example.org"))
            assert [r.code for r in replies] == [250], replies
    host, port = imap_addr(node)
    imap = imaplib.IMAP4(host, port, timeout=20)
    imap.login("alice", PASSWORD)
    imap.select("INBOX")
    assert imap.uid("STORE", "1,2", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
    assert imap.expunge()[0] == "OK"
    assert imap.uid("MOVE", "3", "Trash")[0] == "OK"
    imap.logout()
    assert node.subjects("alice") == [subjects[3]]
    node.kill()
    node.start()
    assert node.subjects("alice") == [subjects[3]], "expunged or moved messages came back"
    assert node.subjects("alice", "Trash") == [subjects[2]]


def test_crash_before_the_stores_replays_a_many_recipient_message_once_each(make_ternd):
    """The journal holds a message once and a record per recipient that refers
    to it: killed after the journal sync but before any store was written,
    the restarted node gives each recipient its copy, once, with its own
    Delivered-To."""
    node = make_ternd(start=False, users=())
    os.environ["TERN_FAULT_APPLY_STALL_MS"] = "60000"
    try:
        node.start()
    finally:
        del os.environ["TERN_FAULT_APPLY_STALL_MS"]
    for user in ("alice", "bob"):
        node.add_user(user)
    subject = unique_subject("replay-fanout")
    msg = make_message(subject, body="r" * 50_000 + "\r\n")
    rcpts = ["alice@example.org", "alice+Sent@example.org", "bob@example.org"]
    c = LmtpConn(node.lmtp_addr)
    c.lhlo()
    c.expect("MAIL FROM:<a@b.test>", 250)
    for r in rcpts:
        c.expect(f"RCPT TO:<{r}>", 250)
    c.expect("DATA", 354)
    c.send(msg + b".\r\n")

    def journaled():
        return sum(os.path.getsize(os.path.join(node.data_dir, f))
                   for f in os.listdir(node.data_dir) if f.startswith("delivery.journal")) > len(msg)
    wait_for(journaled, 15, "the message in the journal")
    c.sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        c.sock.recv(1)  # no reply yet: the stores were never written
    node.kill()
    c.close()
    node.start()
    assert node.subjects("alice", "INBOX").count(subject) == 1
    assert node.subjects("alice", "Sent").count(subject) == 1
    assert node.subjects("bob", "INBOX").count(subject) == 1
    raw = node.find("alice", "Sent", subject)
    assert b"Delivered-To: alice+Sent@example.org" in raw
    assert raw.endswith(b"r" * 50_000 + b"\r\n")
