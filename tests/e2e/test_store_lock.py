"""A store write never holds up the loop thread (issue 8, "every IMAP store
write leaves the loop thread").

Another process holding a user's store write-locked (a backup tool, a
sqlite3 shell, a stuck writer) used to stall the loop thread of every
session of that user's that tried to write: SQLite's busy handler slept on
the loop for up to the busy timeout (5 s), and every other session on that
thread, whoever its user, waited as long. Now each write runs on the apply
worker that owns the user, within TERN_STORE_WRITE_DEADLINE_MS (5 s):
alice's command ends with a temporary error (NO [UNAVAILABLE], what
src/proto/reply.c maps TERN_ERR_TEMP to) by then, and bob, on the same loop
thread (worker_threads = 1) and on another apply worker (alice and bob hash
to different ones of the 4), is answered at once all along.

How it is measured: the test holds alice's store file in a write
transaction (BEGIN IMMEDIATE through Python's sqlite3 module, released in a
finally), sends one of alice's commands, and until its tagged reply comes
times one round trip after another of bob's NOOP, SELECT, FETCH and STORE.
Each NOOP, SELECT and FETCH must come back within 25 ms (all but one in a
thousand, and those within 250 ms: see NOISE_ONE_IN), each STORE, which
waits for bob's own fsync, within 1 s (see WORKER_BOUND); before the
change the first of them waited the whole 5 s behind alice's blocked
write. After the lock is
released the same command of alice's succeeds, so the failed attempt left
her session and her store as they were.

A failed write must not have happened at all, and a write a client hung up
on must still happen: both are checked too. Every wait has a deadline; no
sleep stands in for synchronisation."""

import contextlib
import os
import re
import sqlite3
import threading
import time

import pytest

from imap_helpers import Raw, deliver, imap_node, status_of
from ternlib import wait_for

# ASan builds run several times slower; the bounds scale, the claim stays.
SCALE = 4.0 if os.environ.get("TERN_SANITIZED", "0") not in ("", "0") else 1.0
BOUND = 0.025 * SCALE              # bob's round trip on the loop
# A write that holds the loop costs every other session the whole lock
# wait (5 s before this change: one of bob's round trips took 5,000 ms).
# A shared 2-CPU host running other tests now and then keeps the test
# client or ternd off the CPU for longer than BOUND (seen: 1 or 2 NOOPs in
# 8,000 at 68 and 83 ms while other suites ran); so one round trip in
# NOISE_ONE_IN may pass BOUND, none may reach STALL.
NOISE_ONE_IN = 1000
STALL = 0.250 * SCALE
# bob's STORE is a write too: it goes to his own apply worker and waits for
# its fsync, which on a disk shared with other tests took up to 280 ms
# (most take under 5 ms). That is the disk's time, not alice's: waiting
# behind her blocked write would take seconds, so it is bounded by a
# fraction of the write deadline.
WORKER_BOUND = 1.0 * SCALE
WRITE_DEADLINE = 5.0               # TERN_STORE_WRITE_DEADLINE_MS
ANSWER_BY = WRITE_DEADLINE + 1.0 * SCALE
TEMP = "NO [UNAVAILABLE]"          # TERN_ERR_TEMP in src/proto/reply.c

# bob's probes: reads, and a write of his own (on his own apply worker)
BOB_CYCLE = ("NOOP", "SELECT INBOX", "FETCH 1:* (FLAGS)", "STORE 1 +FLAGS (\\Flagged)",
             "NOOP", "STORE 1 -FLAGS (\\Flagged)")


@contextlib.contextmanager
def store_locked(path):
    """Holds the store's write lock (as any other SQLite writer would) until
    the block ends, however it ends."""
    db = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        db.execute("BEGIN IMMEDIATE")
        yield
    finally:
        try:
            db.execute("ROLLBACK")
        finally:
            db.close()


def bob_round_trips(bob, until):
    """bob's commands one after another, each timed, until until() is true
    (at least one full cycle). Returns [(seconds, command)]."""
    times = []
    i = 0
    while i < len(BOB_CYCLE) or not until():
        text = BOB_CYCLE[i % len(BOB_CYCLE)]
        t0 = time.monotonic()
        untagged, tagged = bob.cmd(text, timeout=ANSWER_BY + 5)
        times.append((time.monotonic() - t0, text))
        assert tagged.startswith("OK"), f"bob's {text}: {tagged} after {untagged!r}"
        i += 1
    return times


def run_while_locked(node, alice, bob, text):
    """alice sends text while her store is locked; bob's round trips are
    timed until her tagged reply. Returns (tagged, untagged, alice's seconds,
    bob's [(seconds, command)])."""
    result = {}

    def alice_waits():
        try:
            result["reply"] = alice.wait(tag, timeout=ANSWER_BY + 5)
        except AssertionError as exc:   # no reply in time, or closed
            result["error"] = exc
        result["elapsed"] = time.monotonic() - t0

    with store_locked(node.mail_db("alice")):
        tag = alice.tag()
        t0 = time.monotonic()
        alice.send(f"{tag} {text}\r\n")
        waiter = threading.Thread(target=alice_waits, daemon=True)
        waiter.start()
        try:
            times = bob_round_trips(bob, lambda: not waiter.is_alive())
        finally:
            waiter.join(ANSWER_BY + 10)
    assert "error" not in result, f"alice's {text}: {result.get('error')}"
    untagged, tagged = result["reply"]
    return tagged, untagged, result["elapsed"], times


def messages(client, folder):
    return status_of(client.ok(f"STATUS {folder} (MESSAGES)"))["MESSAGES"]


def flagged(client):
    """UIDs with \\Flagged in INBOX, read without claiming \\Recent."""
    client.ok("EXAMINE INBOX")
    return client.search("FLAGGED", uid=True)


def folder_names(client):
    names = set()
    for r in client.ok('LIST "" "*"'):
        m = re.match(rb'\* LIST \([^)]*\) (?:"/"|NIL) "?([^"]*)"?$', r)
        assert m, r
        names.add(m.group(1).decode())
    return names


def subscribed(client):
    return {re.match(rb'.* "?([^"]*)"?$', r).group(1).decode()
            for r in client.ok('LSUB "" "*"')}


# Each case: (alice's setup before the lock, whether she selects INBOX, the
# command, what its tagged reply starts with under the lock, a check that
# nothing happened, what the retry's untagged replies must show).
CASES = {
    "STORE": ((), True, "STORE 1 +FLAGS (\\Flagged)", TEMP,
              lambda c: flagged(c) == [], rb"\* 1 FETCH \(FLAGS \(.*\\Flagged"),
    "EXPUNGE": (("STORE 1 +FLAGS (\\Deleted)",), True, "EXPUNGE", TEMP,
                lambda c: messages(c, "INBOX") == 3, rb"\* 1 EXPUNGE$"),
    "UID EXPUNGE": (("STORE 2 +FLAGS (\\Deleted)",), True, "UID EXPUNGE 1:*", TEMP,
                    lambda c: messages(c, "INBOX") == 3, rb"\* 2 EXPUNGE$"),
    "COPY": ((), True, "COPY 1:2 Trash", TEMP,
             lambda c: messages(c, "Trash") == 0, None),
    "MOVE": ((), True, "MOVE 1 Trash", TEMP,
             lambda c: messages(c, "Trash") == 0 and messages(c, "INBOX") == 3,
             rb"\* 1 EXPUNGE$"),
    "UID MOVE": ((), True, "UID MOVE 2:* Trash", TEMP,
                 lambda c: messages(c, "Trash") == 0, rb"\* 2 EXPUNGE$"),
    "CREATE": ((), False, "CREATE Projects/2026", TEMP,
               lambda c: not {"Projects", "Projects/2026"} & folder_names(c), None),
    "CREATE-SPECIAL-USE": ((), False, "CREATE Archive (USE (\\Archive))", TEMP,
                           lambda c: "Archive" not in folder_names(c), None),
    "DELETE": (("CREATE Old",), False, "DELETE Old", TEMP,
               lambda c: "Old" in folder_names(c), None),
    "RENAME": (("CREATE Old",), False, "RENAME Old New", TEMP,
               lambda c: "Old" in folder_names(c) and "New" not in folder_names(c), None),
    # a name may be subscribed whether or not it exists (RFC 3501 §6.3.6)
    "SUBSCRIBE": ((), False, "SUBSCRIBE Lists/ietf", TEMP,
                  lambda c: "Lists/ietf" not in subscribed(c), None),
    "UNSUBSCRIBE": (("SUBSCRIBE Lists/ietf",), False, "UNSUBSCRIBE Lists/ietf", TEMP,
                    lambda c: "Lists/ietf" in subscribed(c), None),
    # the implicit expunge; the folder is closed whatever happens
    "CLOSE": (("STORE 1 +FLAGS (\\Deleted)",), True, "CLOSE", TEMP,
              lambda c: messages(c, "INBOX") == 3, None),
    # \Recent is advisory: SELECT answers OK, only the claim is lost
    "SELECT": ((), False, "SELECT INBOX", "OK [READ-WRITE]",
               lambda c: True, rb"\* 3 RECENT$"),
}


@pytest.fixture
def node(make_ternd):
    n = imap_node(make_ternd, worker_threads=1)
    for user in ("alice", "bob"):
        for i in range(3):
            deliver(n, user, subject=f"lock test {user} {i}")
    return n


@pytest.mark.parametrize("case", list(CASES))
def test_locked_store_write_fails_in_time_and_holds_up_nobody(node, case):
    setup, select, text, want, unchanged, retry_shows = CASES[case]
    with Raw(node).login("alice") as alice, Raw(node).login("bob") as bob, \
            Raw(node).login("alice") as check:
        bob.select()
        if select:
            alice.select()
        for cmd in setup:
            alice.ok(cmd)

        tagged, untagged, elapsed, times = run_while_locked(node, alice, bob, text)
        reads = [(t, c) for t, c in times if not c.startswith("STORE")]
        stores = [(t, c) for t, c in times if c.startswith("STORE")]
        worst, worst_cmd = max(reads)
        slow = [(round(t * 1000, 1), c) for t, c in reads if t > BOUND]
        print(f"\n{case}: alice {elapsed:.3f} s ({tagged!r}); bob {len(reads)} NOOP/SELECT/FETCH, "
              f"{len(slow)} over {BOUND * 1000:.0f} ms, worst {worst * 1000:.1f} ms ({worst_cmd}); "
              f"{len(stores)} STORE, worst {max(stores)[0] * 1000:.1f} ms")
        assert tagged.startswith(want), f"alice's {text}: {tagged!r} after {untagged!r}"
        assert elapsed <= ANSWER_BY, f"alice's {text} took {elapsed:.2f} s (deadline {ANSWER_BY} s)"
        assert worst < STALL and len(slow) <= len(reads) // NOISE_ONE_IN, (
            f"bob waited behind alice's {text}: {len(slow)} of {len(reads)} round trips over "
            f"{BOUND * 1000:.0f} ms: {slow[:10]}")
        assert max(stores)[0] < WORKER_BOUND, (
            f"bob's STORE waited behind alice's {text}: {max(stores)[0]:.2f} s")
        assert unchanged(check), f"alice's failed {text} changed her store"
        if case == "SELECT":
            assert b"* 0 RECENT" in untagged, untagged

        # the lock is gone: the same command works, and the session is sane
        if case == "CLOSE":
            alice.select()
        untagged = alice.ok(text, timeout=ANSWER_BY)
        if retry_shows is not None:
            assert any(re.match(retry_shows, r) for r in untagged), (text, untagged)
        if case == "CLOSE":
            assert messages(check, "INBOX") == 2
            alice.select()
        alice.ok("NOOP")
        if select or case == "SELECT":
            alice.ok("STORE 1 +FLAGS (\\Seen)")


def test_write_of_a_client_that_hung_up_still_happens(node):
    """The write was started: the client leaving does not undo it, and the
    reply nobody reads is dropped (done runs with closing set)."""
    for i in range(4):
        c = Raw(node).login("alice")
        c.send(f"a1 CREATE gone{i}\r\n")
        c.close()
    c = Raw(node).login("alice")
    c.select()
    c.send("a1 MOVE 1:* Trash\r\n")
    c.close()
    with Raw(node).login("alice") as check:
        wait_for(lambda: {f"gone{i}" for i in range(4)} <= folder_names(check), ANSWER_BY,
                 "the folders of sessions that hung up")
        wait_for(lambda: messages(check, "Trash") == 3, ANSWER_BY,
                 "the MOVE of a session that hung up")
        assert messages(check, "INBOX") == 0


def test_multiappend_undo_runs_on_the_worker(make_ternd):
    """RFC 3502: all or nothing. The precheck counts the literals' bytes,
    the store the CRLF-normalised message: with bare LFs the second message
    passes the precheck and fails in the store (OVERQUOTA), so the first,
    already stored, is expunged again (now a store task) before the NO."""
    node = imap_node(make_ternd, worker_threads=1)
    node.ctl("user", "quota", "alice", "3K")
    body = "x" * 5 + "\n"
    msg = ("Subject: lf\n\n" + body * 240).encode()      # ~1.45 KB, ~1.7 KB stored
    assert 2 * len(msg) <= 3 * 1024 < 2 * (len(msg) + msg.count(b"\n"))
    with Raw(node).login("alice") as c:
        c.select()
        t = c.tag()
        c.send(f"{t} APPEND INBOX {{{len(msg)}+}}\r\n".encode() + msg +
               f" {{{len(msg)}+}}\r\n".encode() + msg + b"\r\n")
        untagged, tagged = c.wait(t, timeout=ANSWER_BY)
        assert tagged.startswith("NO [OVERQUOTA]"), (tagged, untagged)
        assert messages(c, "INBOX") == 0
        c.ok("NOOP")
