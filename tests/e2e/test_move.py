"""Online mailbox moves (issue 10), end to end with two nodes: what the user
sees before a move is what it sees after it, through any node, and mail
keeps flowing during it. The state of each move is read the way an
administrator would: `ternctl move status --json`, `ternctl user show`,
`ternctl mailbox` on the nodes."""

import os
import re
import threading
import time

import pytest

from cluster_helpers import SENDER, cluster_factory
from imap_helpers import Raw
from mbsync_config import write_mbsync_rc
from ternlib import IO_TIMEOUT, LmtpConn, make_message, unique_subject, wait_for

MOVE_DEADLINE = 60.0


@pytest.fixture
def make_cluster(tmp_path):
    yield from cluster_factory(tmp_path)


def deliver(cl, front, user, subject):
    with LmtpConn(cl.lmtp_addr(front), timeout=IO_TIMEOUT) as c:
        c.lhlo()
        _, replies = c.deliver(SENDER, [f"{user}@example.org"],
                               make_message(subject, to=f"{user}@example.org"))
    return replies[0]


def deliver_big(cl, front, user, count):
    """count messages of about 10 KB each, every one acknowledged with 250;
    their subjects."""
    body = ("x" * 70 + "\r\n") * 140
    subjects = []
    with LmtpConn(cl.lmtp_addr(front), timeout=IO_TIMEOUT) as c:
        c.lhlo()
        for i in range(count):
            _, replies = c.deliver(SENDER, [f"{user}@example.org"],
                                   make_message(f"big {i}", body=body, to=f"{user}@example.org"))
            assert replies[0].code == 250
            subjects.append(f"big {i}")
    return subjects


def imap_view(cl, front, user="alice"):
    """What a client sees: per folder (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ,
    [(uid, flags, modseq, size)]), and the subscriptions."""
    c = Raw(cl.imap_addr(front)).login(user)
    try:
        view = {}
        names = []
        for line in c.ok('LIST "" "*"'):
            text = line.decode() if isinstance(line, bytes) else line
            m = re.search(r'"([^"]+)"\s*$', text) or re.search(r"\s(\S+)$", text)
            names.append(m.group(1).strip('"'))
        subs = sorted(
            (l.decode() if isinstance(l, bytes) else l).rsplit(" ", 1)[-1].strip('"')
            for l in c.ok('LSUB "" "*"'))
        for name in sorted(names):
            untagged = c.ok(f'EXAMINE "{name}" (CONDSTORE)')
            text = b"\n".join(u if isinstance(u, bytes) else u.encode() for u in untagged).decode()
            uv = re.search(r"UIDVALIDITY (\d+)", text).group(1)
            un = re.search(r"UIDNEXT (\d+)", text).group(1)
            hm = re.search(r"HIGHESTMODSEQ (\d+)", text).group(1)
            msgs = []
            if not re.search(r"\* 0 EXISTS", text):
                for u in c.ok("UID FETCH 1:* (FLAGS MODSEQ RFC822.SIZE)"):
                    t = u.decode() if isinstance(u, bytes) else u
                    uid = int(re.search(r"UID (\d+)", t).group(1))
                    flags = tuple(sorted(re.search(r"FLAGS \(([^)]*)\)", t).group(1).split()))
                    modseq = int(re.search(r"MODSEQ \((\d+)\)", t).group(1))
                    size = int(re.search(r"RFC822.SIZE (\d+)", t).group(1))
                    msgs.append((uid, flags, modseq, size))
            view[name] = (uv, un, hm, sorted(msgs))
        return view, subs
    finally:
        c.close()


def move_status(cl, node, user):
    rows = cl[node].ctl("move", "status", user, as_json=True)
    if isinstance(rows, dict):
        rows = next((v for v in rows.values() if isinstance(v, list)), [rows])
    return rows[-1] if rows else None


def wait_move_done(cl, node, user, timeout=MOVE_DEADLINE):
    def done():
        st = move_status(cl, node, user)
        return st if st and st.get("phase") in ("completed", "failed", "cancelled") else None
    return wait_for(done, timeout, f"the move of {user} to finish")


def user_row(cl, node, user):
    return cl[node].ctl("user", "show", user, as_json=True)


def test_quiet_move_keeps_everything(make_cluster):
    """A mailbox with folders, flags, keywords, expunges and subscriptions
    moves from node-a to node-b; afterwards the directory names node-b with
    the epoch bumped, node-b holds the mailbox, node-a's copy is gone, and a
    client sees exactly the same folders, UIDVALIDITY, UIDNEXT,
    HIGHESTMODSEQ, UIDs, flags and modseqs through either node."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"))
    for i in range(30):
        assert deliver(cl, "node-a", "alice", f"before {i}").code == 250
    c = Raw(cl.imap_addr("node-a")).login()
    try:
        c.ok("CREATE Projects/2026")
        c.ok("SUBSCRIBE Projects/2026")
        c.ok("SELECT INBOX")
        c.ok("STORE 1:5 +FLAGS (\\Seen $Important)")
        c.ok("STORE 6 +FLAGS (\\Deleted)")
        c.ok("EXPUNGE")
        c.ok("COPY 7:9 Projects/2026")
    finally:
        c.close()
    before = imap_view(cl, "node-a")
    epoch = user_row(cl, "node-a", "alice")["epoch"]

    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    st = wait_move_done(cl, "node-a", "alice")
    assert st["phase"] == "completed", st
    row = user_row(cl, "node-a", "alice")
    assert row["home"] == "node-b" and row["epoch"] == epoch + 1, row
    cl.homes["alice"] = "node-b"
    for front in ("node-a", "node-b"):
        assert imap_view(cl, front) == before, front
    # the old home's copy is removed once the new one was verified
    wait_for(lambda: not __import__("os").path.exists(cl["node-a"].mail_db("alice")), 10,
             "node-a's copy to be removed")
    # mail keeps arriving, through either node, at the new home
    assert deliver(cl, "node-a", "alice", "after via a").code == 250
    assert deliver(cl, "node-b", "alice", "after via b").code == 250
    subjects = [m.get("subject") for m in cl.messages("alice")]
    assert "after via a" in subjects and "after via b" in subjects
    assert cl.log("node-b").count("now homed here") == 1


def test_move_under_load_loses_and_duplicates_nothing(make_cluster):
    """4 LMTP connections deliver to alice through both nodes and an IMAP
    session keeps changing flags while alice moves: every message that got
    250 is at the new home exactly once, no LMTP reply was a temporary
    failure, no command waited longer than move_freeze_timeout, and the
    move completes."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"),
                      move_freeze_timeout="5s")
    for i in range(20):
        assert deliver(cl, "node-a", "alice", f"seed {i}").code == 250
    stop = threading.Event()
    acked, problems, slowest = [], [], [0.0]
    lock = threading.Lock()

    def lmtp_loop(front, k):
        n = 0
        while not stop.is_set():
            subject = unique_subject(f"load-{front}-{k}-{n}")
            n += 1
            t0 = time.monotonic()
            try:
                r = deliver(cl, front, "alice", subject)
            except Exception as exc:   # a hang or a closed connection is a finding
                with lock:
                    problems.append(f"{front}: {exc!r}")
                return
            took = time.monotonic() - t0
            with lock:
                slowest[0] = max(slowest[0], took)
                if r.code == 250:
                    acked.append(subject)
                else:
                    problems.append(f"{front}: {r}")

    def imap_loop():
        while not stop.is_set():
            try:
                c = Raw(cl.imap_addr("node-b")).login()
                try:
                    c.ok("SELECT INBOX")
                    while not stop.is_set():
                        t0 = time.monotonic()
                        untagged, tagged = c.cmd("STORE 1:3 +FLAGS (\\Flagged)")
                        c.cmd("STORE 1:3 -FLAGS (\\Flagged)")
                        with lock:
                            slowest[0] = max(slowest[0], time.monotonic() - t0)
                finally:
                    c.close()
            except Exception:
                # the session on the old home ends with BYE at the switch;
                # the client logs in again (through any node)
                pass

    threads = [threading.Thread(target=lmtp_loop, args=(f, k), daemon=True)
               for f in ("node-a", "node-b") for k in range(2)]
    threads.append(threading.Thread(target=imap_loop, daemon=True))
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 20, 30, "deliveries to flow")
        cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
        st = wait_move_done(cl, "node-a", "alice")
        assert st["phase"] == "completed", st
        wait_for(lambda: len(acked) >= 40 + 20, 30, "deliveries to flow after the move")
    finally:
        stop.set()
        for t in threads:
            t.join(IO_TIMEOUT * 2)
    cl.homes["alice"] = "node-b"
    window = re.search(r"now homed here \(unavailable (\d+) ms", cl.log("node-b"))
    print(f"{len(acked)} deliveries acknowledged during the test, unavailable "
          f"{window.group(1) if window else '?'} ms, slowest command {slowest[0] * 1000:.0f} ms")
    assert not problems, problems[:5]
    assert slowest[0] < 5.0 + 1.0, f"a command waited {slowest[0]:.1f} s"
    subjects = [m.get("subject") for m in cl.messages("alice")]
    missing = [s for s in acked if s not in subjects]
    dupes = {s for s in acked if subjects.count(s) > 1}
    assert not missing, f"{len(missing)} acknowledged messages missing: {missing[:3]}"
    assert not dupes, f"duplicated: {sorted(dupes)[:3]}"


# ------------------------------------------------------------------ continuity

def test_clients_resync_nothing_after_a_move(make_cluster, tmp_path):
    """mbsync synchronises alice through node-b before the move and again
    after it: the second run downloads nothing (the maildir is unchanged
    and mbsync reports nothing pulled), because UIDVALIDITY, UIDs and flags
    are the same. POP3's UIDL list is the same before and after, so a POP3
    client that keeps mail on the server downloads nothing again."""
    import shutil as _shutil
    if _shutil.which("mbsync") is None:
        pytest.skip("mbsync is not installed")
    from test_cluster_proxy import maildir_paths, run
    from cluster_helpers import Pop3
    from ternlib import PASSWORD
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"))
    for i in range(12):
        assert deliver(cl, "node-a", "alice", f"sync {i}").code == 250
    home = tmp_path / "home"
    host, port = cl.imap_addr("node-b")
    rc, maildir = write_mbsync_rc(home, host, port, patterns=("INBOX",))
    run(["mbsync", "-c", str(rc), "-a"], home)
    before = sorted(maildir_paths(maildir / "INBOX"))
    assert len(before) == 12

    def uidl():
        p = Pop3(cl.pop3_addr("node-b"))
        try:
            p.ok("USER alice")
            p.ok(f"PASS {PASSWORD}")
            p.send("UIDL\r\n")
            assert p.line().startswith("+OK")
            lines = []
            while True:
                line = p.line()
                if line == ".":
                    return lines
                lines.append(line)
        finally:
            p.close()
    uidl_before = uidl()

    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    assert wait_move_done(cl, "node-a", "alice")["phase"] == "completed"
    cl.homes["alice"] = "node-b"

    out = run(["mbsync", "-V", "-c", str(rc), "-a"], home)
    assert sorted(maildir_paths(maildir / "INBOX")) == before, out[-2000:]
    assert not re.search(r"(?i)uidvalidity", out), out[-2000:]
    pulled = re.findall(r"(?m)^.*[Ff]ar: \+(\d+)", out)
    assert all(n == "0" for n in pulled), out[-2000:]
    assert uidl() == uidl_before


# ------------------------------------------------------------------ operator

def test_suspend_when_ready_then_complete(make_cluster):
    """--suspend-when-ready keeps the move synced in `ready` (mail still
    arrives at the source and is carried over) until `move complete`."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"))
    for i in range(5):
        assert deliver(cl, "node-a", "alice", f"early {i}").code == 250
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b", "--suspend-when-ready")
    wait_for(lambda: (move_status(cl, "node-a", "alice") or {}).get("phase") == "ready", 30,
             "the move to be ready")
    assert user_row(cl, "node-a", "alice")["home"] == "node-a"
    assert deliver(cl, "node-b", "alice", "while ready").code == 250
    cl["node-a"].ctl("move", "complete", "alice")
    assert wait_move_done(cl, "node-a", "alice")["phase"] == "completed"
    cl.homes["alice"] = "node-b"
    subjects = [m.get("subject") for m in cl.messages("alice")]
    assert subjects.count("while ready") == 1 and len(subjects) == 6


def test_cancel_rolls_back(make_cluster):
    """A move cancelled while it waits in `ready` ends `cancelled`: the
    directory still names node-a, node-a serves alice as before (nothing
    frozen or fenced), and node-b keeps no copy."""
    import os
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"))
    for i in range(5):
        assert deliver(cl, "node-a", "alice", f"stay {i}").code == 250
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b", "--suspend-when-ready")
    wait_for(lambda: (move_status(cl, "node-a", "alice") or {}).get("phase") == "ready", 30,
             "the move to be ready")
    cl["node-a"].ctl("move", "cancel", "alice")
    assert wait_move_done(cl, "node-a", "alice")["phase"] == "cancelled"
    assert user_row(cl, "node-a", "alice")["home"] == "node-a"
    wait_for(lambda: not os.path.exists(cl["node-b"].mail_db("alice")), 10,
             "node-b's copy to be removed")
    assert deliver(cl, "node-a", "alice", "after cancel").code == 250
    c = Raw(cl.imap_addr("node-a")).login()
    try:
        c.ok("SELECT INBOX")
        c.ok("STORE 1 +FLAGS (\\Seen)")      # the source was not left fenced
    finally:
        c.close()
    assert len(cl.messages("alice")) == 6


def test_back_and_forth_under_load(make_cluster):
    """alice moves A->B->A->B while mail arrives through both nodes: each
    move completes, and every acknowledged message is at the final home
    exactly once."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"))
    stop = threading.Event()
    acked, problems = [], []
    lock = threading.Lock()

    def lmtp_loop(front):
        n = 0
        while not stop.is_set():
            subject = unique_subject(f"bf-{front}-{n}")
            n += 1
            try:
                r = deliver(cl, front, "alice", subject)
            except Exception as exc:
                with lock:
                    problems.append(repr(exc))
                return
            with lock:
                (acked if r.code == 250 else problems).append(subject if r.code == 250 else str(r))
    threads = [threading.Thread(target=lmtp_loop, args=(f,), daemon=True)
               for f in ("node-a", "node-b")]
    for t in threads:
        t.start()
    try:
        for dest in ("node-b", "node-a", "node-b"):
            cl["node-a"].ctl("move", "start", "alice", "--to", dest)
            assert wait_move_done(cl, "node-a", "alice")["phase"] == "completed"
            assert user_row(cl, "node-a", "alice")["home"] == dest
    finally:
        stop.set()
        for t in threads:
            t.join(IO_TIMEOUT * 2)
    cl.homes["alice"] = "node-b"
    assert not problems, problems[:5]
    subjects = [m.get("subject") for m in cl.messages("alice")]
    missing = [s for s in acked if s not in subjects]
    assert not missing and len(subjects) == len(set(subjects)) == len(acked), (
        f"{len(missing)} missing, {len(subjects)} stored, {len(acked)} acknowledged")


def test_batch_of_users_while_delivering(make_cluster):
    """20 users move from node-a to node-b with `move batch --parallel 4
    --wait` while every one of them receives mail: all moves complete and
    no acknowledged message is lost or duplicated."""
    users = {f"u{i:02d}": "node-a" for i in range(20)}
    cl = make_cluster(users=users, names=("node-a", "node-b"))
    for u in users:
        assert deliver(cl, "node-a", u, f"{u} first").code == 250
    stop = threading.Event()
    acked, problems = {u: [] for u in users}, []
    lock = threading.Lock()

    def lmtp_loop(k):
        n = 0
        while not stop.is_set():
            u = f"u{(n * 3 + k) % 20:02d}"
            subject = unique_subject(f"batch-{u}-{k}-{n}")
            n += 1
            try:
                r = deliver(cl, ("node-a", "node-b")[n % 2], u, subject)
            except Exception as exc:
                with lock:
                    problems.append(repr(exc))
                return
            with lock:
                if r.code == 250:
                    acked[u].append(subject)
                else:
                    problems.append(str(r))
    threads = [threading.Thread(target=lmtp_loop, args=(k,), daemon=True) for k in range(3)]
    for t in threads:
        t.start()
    try:
        cl["node-a"].ctl("move", "batch", "--to", "node-b", "--from", "node-a",
                         "--parallel", "4", "--wait", "--timeout", "120s", timeout=150)
    finally:
        stop.set()
        for t in threads:
            t.join(IO_TIMEOUT * 2)
    assert not problems, problems[:5]
    for u in users:
        cl.homes[u] = "node-b"
        assert user_row(cl, "node-a", u)["home"] == "node-b"
        subjects = [m.get("subject") for m in cl.messages(u)]
        missing = [s for s in acked[u] if s not in subjects]
        assert not missing and len(subjects) == len(set(subjects)), (u, missing[:3])


# ------------------------------------------------------------------ crashes

def deliver_until(cl, front, user, subject, deadline):
    """Delivers until one attempt gets 250 (a temporary failure while a
    freeze lasts is expected here); returns the replies seen."""
    seen = []
    while time.monotonic() < deadline:
        r = deliver(cl, front, user, subject)
        seen.append(r.code)
        if r.code == 250:
            return seen
        assert r.code // 100 == 4, r
    raise AssertionError(f"no 250 before the deadline: {seen}")


@pytest.mark.parametrize("phase", ["COPYING", "SYNCING", "FENCED", "SWITCHED"])
def test_destination_killed_mid_move(make_cluster, phase):
    """The destination (which runs the mover) is SIGKILLed while its move
    waits at a phase (a test hook). The user is never frozen past the
    lease: within move_freeze_timeout (+ slack) of the kill, mail for the
    user is accepted again. When the destination restarts, the move is
    taken up again and completes, and every message that got 250 is at
    the final home exactly once."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"),
                      move_freeze_timeout="2s")
    cl.expect_outage_errors()
    acked = []
    for i in range(10):
        s = f"pre {i}"
        assert deliver(cl, "node-a", "alice", s).code == 250
        acked.append(s)
    node_b = cl["node-b"]
    node_b.extra_env = {f"TERN_FAULT_MOVE_PAUSE_{phase}_MS": "60000"}
    cl.stop("node-b")
    cl.start("node-b")
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    marks = {"COPYING": r"queued -> copying", "SYNCING": r"copying -> syncing",
             "FENCED": r"syncing -> finalizing", "SWITCHED": r"syncing -> finalizing"}
    cl.wait_log("node-b", marks[phase], f"the move to reach {phase}", timeout=20)
    if phase in ("FENCED", "SWITCHED"):
        cl.wait_log("node-a", r"frozen for at most", "the source to freeze alice", timeout=20)
    if phase == "SWITCHED":
        wait_for(lambda: user_row(cl, "node-a", "alice")["home"] == "node-b", 20,
                 "the directory switch")
    cl.kill("node-b")
    t_kill = time.monotonic()
    # mail for alice is accepted again within the lease (+ slack), through
    # node-a, whatever the phase: parked requests end, the fence lapses
    front = "node-a"
    if phase == "SWITCHED":
        # the directory names node-b, which is down: node-a relays there,
        # so alice's mail waits for node-b (451 4.4.1) until it is back
        r = deliver(cl, front, "alice", "while b is down")
        assert r.code // 100 == 4, r
    else:
        # the freeze's lease is 2 s; a fence lasts at least 5 s (beyond the
        # user caches' trust), so writes are back within 5 s + slack
        deliver_until(cl, front, "alice", "after the kill", time.monotonic() + 5.0 + 3.0)
        acked.append("after the kill")
        assert time.monotonic() - t_kill < 5.0 + 3.0
    node_b.extra_env = {}
    cl.start("node-b")
    if phase != "SWITCHED":
        st = wait_move_done(cl, "node-a", "alice")
        assert st["phase"] == "completed", st
    wait_for(lambda: user_row(cl, "node-a", "alice")["home"] == "node-b", 30,
             "alice to be homed on node-b")
    cl.homes["alice"] = "node-b"
    s = "after restart"
    deliver_until(cl, "node-a", "alice", s, time.monotonic() + 10)
    acked.append(s)
    subjects = [m.get("subject") for m in cl.messages("alice")]
    missing = [x for x in acked if x not in subjects]
    assert not missing, missing
    assert len(subjects) == len(set(subjects)), "duplicates"
    # node-a's copy goes: removed by the mover, or, when the mover died
    # after the switch, by node-a's orphan collector (every 10 s)
    wait_for(lambda: not os.path.exists(cl["node-a"].mail_db("alice")), 30,
             "node-a's copy to be removed")
    if phase == "SWITCHED":
        log_a = cl.log("node-a")
        assert "removed by the orphan collector" in log_a, \
            [l for l in log_a.splitlines() if "move" in l or "alice" in l]


def test_delivery_ids_of_two_nodes_never_collide(make_cluster):
    """Each node's delivery journal numbers what it accepts, and a store
    remembers the numbers it applied so a replayed delivery is stored once;
    a move carries those numbers along. Both nodes here start their number
    sequence at the same clock value (a test hook), the worst case of two
    nodes started in the same microsecond: after alice moves from node-a to
    node-b, every message node-b accepts for her is stored, none is taken
    for a replay of one node-a delivered, and nothing is stored twice."""
    cl = make_cluster(users={}, names=("node-a", "node-b"), start=False)
    clock = str(int(time.time() * 1e6))
    for name in ("node-a", "node-b"):
        cl[name].extra_env = {"TERN_FAULT_DELIVERY_ID_CLOCK": clock}
    cl.start_all()
    cl.add_user("alice", "node-a")
    sent = []
    for i in range(10):
        assert deliver(cl, "node-a", "alice", f"on a {i}").code == 250
        sent.append(f"on a {i}")
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    assert wait_move_done(cl, "node-a", "alice")["phase"] == "completed"
    cl.homes["alice"] = "node-b"
    for i in range(10):
        front = ("node-a", "node-b")[i % 2]
        assert deliver(cl, front, "alice", f"on b {i}").code == 250
        sent.append(f"on b {i}")
    subjects = sorted(m["subject"] for m in cl.messages("alice"))
    assert subjects == sorted(sent)


def test_destination_that_cannot_store_fails_cleanly(make_cluster):
    """The destination cannot write the copy (here: its incoming file's
    name is taken by a directory, as a full or broken disk would refuse
    it): the move ends `failed` with the reason, the directory still names
    node-a, alice never noticed (mail accepted throughout, no temporary
    failure, nothing frozen), and node-b keeps nothing."""
    import os
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"))
    for i in range(5):
        assert deliver(cl, "node-a", "alice", f"kept {i}").code == 250
    blocker = os.path.join(cl["node-b"].data_dir, "mail", ".move-in-alice.db")
    os.makedirs(blocker)
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    st = wait_move_done(cl, "node-a", "alice")
    assert st["phase"] == "failed" and ".move-in-alice.db" in st.get("last_error", ""), st
    assert user_row(cl, "node-a", "alice")["home"] == "node-a"
    assert "frozen" not in cl.log("node-a")
    for front in ("node-a", "node-b"):
        assert deliver(cl, front, "alice", f"after via {front}").code == 250
    assert len(cl.messages("alice")) == 7
    assert not os.path.exists(cl["node-b"].mail_db("alice"))


def test_move_bandwidth_paces_the_copy(make_cluster):
    """move_bandwidth = 256k on the destination: a mailbox of about 1.5 MB
    cannot be copied in less than about 5 s (a lower bound only: what the
    pacing guarantees, whatever the machine's speed)."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"),
                      node_settings={"node-b": {"move_bandwidth": "256k"}})
    deliver_big(cl, "node-a", "alice", 150)
    size = os.path.getsize(cl["node-a"].mail_db("alice"))
    t0 = time.monotonic()
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    st = wait_move_done(cl, "node-a", "alice", timeout=MOVE_DEADLINE + size / (256 * 1024))
    took = time.monotonic() - t0
    assert st["phase"] == "completed", st
    assert took >= 0.8 * size / (256 * 1024), f"{size} bytes moved in {took:.1f} s at 256k/s"


def test_destination_killed_while_the_copy_streams(make_cluster):
    """The source sends the copy a chunk at a time as the channel drains
    (move_bandwidth = 256k on node-b keeps it streaming for seconds); node-b
    is killed in the middle. node-a keeps serving alice as if nothing
    happened, leaves no outgoing copy behind in its mail directory, and
    once node-b is back the move is taken up again and completes with every
    message."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"),
                      node_settings={"node-b": {"move_bandwidth": "256k"}})
    cl.expect_outage_errors()
    acked = deliver_big(cl, "node-a", "alice", 150)
    incoming = os.path.join(cl["node-b"].data_dir, "mail", ".move-in-alice.db")
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    wait_for(lambda: os.path.exists(incoming) and os.path.getsize(incoming) > 300_000, 30,
             "node-b to be receiving the copy")
    cl.kill("node-b")
    mail_a = os.path.join(cl["node-a"].data_dir, "mail")
    wait_for(lambda: not [f for f in os.listdir(mail_a) if f.startswith(".move-out-")], 10,
             "node-a to drop the copy it was sending")
    assert deliver(cl, "node-a", "alice", "during the outage").code == 250
    acked.append("during the outage")
    assert "frozen" not in cl.log("node-a")
    cl.start("node-b")
    st = wait_move_done(cl, "node-a", "alice", timeout=MOVE_DEADLINE + 60)
    assert st["phase"] == "completed", st
    cl.homes["alice"] = "node-b"
    subjects = sorted(m["subject"] for m in cl.messages("alice"))
    assert subjects == sorted(acked)


@pytest.mark.parametrize("phase", ["SYNCING", "FENCED"])
def test_source_killed_mid_move(make_cluster, phase):
    """The source is SIGKILLed while the move waits at a phase: the move
    rolls back (failed; the directory still names the source), the source
    serves alice again once it is back, with every acknowledged message
    once, and a new move then completes."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"),
                      move_freeze_timeout="2s")
    cl.expect_outage_errors()
    acked = []
    for i in range(10):
        s = f"pre {i}"
        assert deliver(cl, "node-a", "alice", s).code == 250
        acked.append(s)
    node_b = cl["node-b"]
    node_b.extra_env = {f"TERN_FAULT_MOVE_PAUSE_{phase}_MS": "3000"}
    cl.stop("node-b")
    cl.start("node-b")
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    cl.wait_log("node-b", r"copying -> syncing" if phase == "SYNCING" else r"-> finalizing",
                f"the move to reach {phase}", timeout=20)
    if phase == "FENCED":
        cl.wait_log("node-a", r"frozen for at most", "the source to freeze alice", timeout=20)
    cl.kill("node-a")
    st = wait_move_done(cl, "node-b", "alice")
    assert st["phase"] == "failed", st
    assert user_row(cl, "node-b", "alice")["home"] == "node-a"
    cl.start("node-a")
    s = "after the source restarted"
    deliver_until(cl, "node-b", "alice", s, time.monotonic() + 5.0 + 5.0)
    acked.append(s)
    subjects = [m.get("subject") for m in cl.messages("alice")]
    assert sorted(subjects) == sorted(acked), (subjects, acked)
    node_b.extra_env = {}
    cl.stop("node-b")
    cl.start("node-b")
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    assert wait_move_done(cl, "node-a", "alice")["phase"] == "completed"
    cl.homes["alice"] = "node-b"
    assert sorted(m.get("subject") for m in cl.messages("alice")) == sorted(acked)
