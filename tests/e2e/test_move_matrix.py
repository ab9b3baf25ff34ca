"""Online mailbox moves (issue 10): the cases test_move.py leaves out.

* a move cancelled while it copies and while it syncs;
* a move under the whole load the issue describes: 4 LMTP connections (2
  through each node) and 3 IMAP sessions (one in IDLE on the source, one
  proxied through the other node, one doing STORE/FETCH), with the moved
  mailbox compared to the source's state taken just before the switch;
* a batch of 50 users while all of them receive mail;
* the source SIGKILLed while the move copies and right after the switch;
* a move over cluster_tls;
* a switch that waits for a busy directory past the source's freeze and
  fence: it must not land (the move rolls back), so the mail the source
  took meanwhile stays where the directory says alice lives.

Everything is checked the way a user or an administrator would: with real
LMTP and IMAP clients through either node, `ternctl move status`,
`ternctl user show` and `ternctl mailbox list` on the home node. Pauses at
a phase are the mover's test hooks (TERN_FAULT_MOVE_PAUSE_<PHASE>_MS, see
src/mover/mover.c)."""

import hashlib
import os
import re
import sqlite3
import threading
import time

import pytest

from cluster_helpers import SENDER, cluster_factory, cluster_tls_settings, make_cluster_pki
from imap_helpers import Closed, Raw, fetch_dict
from ternlib import (IO_TIMEOUT, PASSWORD, LmtpConn, dot_stuff, make_message, unique_subject,
                     wait_for)
from test_move import (deliver, deliver_until, imap_view, move_status,
                       user_row, wait_move_done)

# move_freeze_timeout, the longest any delivery or logon of a moving user
# may be held (docs/moving-mailboxes.md): the bound for every command here
FREEZE_TIMEOUT = 5.0


@pytest.fixture
def make_cluster(tmp_path):
    yield from cluster_factory(tmp_path)


# ------------------------------------------------------------------ helpers

def pause_mover_at(cl, name, phase, ms):
    """Restarts `name` so that its mover pauses once, for ms, at `phase`."""
    cl[name].extra_env = {f"TERN_FAULT_MOVE_PAUSE_{phase}_MS": str(ms)}
    cl.stop(name)
    cl.start(name)


def wait_paused(cl, name, phase, timeout=30):
    cl.wait_log(name, rf"fault injection: MOVE_PAUSE_{phase} stalls",
                f"its mover to pause at {phase}", timeout=timeout)


def seed_mailbox(cl, front, user="alice", tag="seed"):
    """12 deliveries, a folder with copies, a subscribed folder, flags and
    keywords on a few messages and one expunged (UID 9). Returns the
    subjects left in INBOX."""
    subjects = []
    for i in range(12):
        s = f"{tag} {i}"
        r = deliver(cl, front, user, s)
        assert r.code == 250, r
        subjects.append(s)
    c = Raw(cl.imap_addr(front)).login(user)
    try:
        c.ok("CREATE Archive")
        c.ok("SUBSCRIBE Archive")
        c.ok('CREATE "Projects/2026"')
        c.ok("SELECT INBOX")
        c.ok("UID STORE 1:4 +FLAGS (\\Seen $Label1)")
        c.ok("UID COPY 5:8 Archive")
        c.ok("UID STORE 9 +FLAGS (\\Deleted)")
        c.ok("EXPUNGE")
    finally:
        c.close()
    subjects.remove(f"{tag} 8")     # UID 9
    return subjects


def inbox_subjects(cl, user="alice"):
    return [m.get("subject") for m in cl.messages(user)]


def assert_once(cl, acked, user="alice", exact=True):
    """Every acknowledged message is at the user's home exactly once (and,
    with exact, nothing else is there)."""
    subjects = inbox_subjects(cl, user)
    missing = [s for s in acked if s not in subjects]
    dupes = sorted({s for s in subjects if subjects.count(s) > 1})
    assert not missing, f"{len(missing)} acknowledged messages missing: {missing[:3]}"
    assert not dupes, f"stored twice: {dupes[:3]}"
    if exact:
        assert sorted(subjects) == sorted(acked), (
            f"{len(subjects)} stored, {len(acked)} acknowledged")


def wait_count(cl, n, user="alice", timeout=30):
    """Waits until the home's INBOX holds n messages (a 250 means the
    delivery is journaled; the store may apply it a moment later)."""
    return wait_for(lambda: len(cl.messages(user)) == n, timeout,
                    f"{user}'s INBOX at {cl.homes[user]} to hold {n} messages")


def imap_works(cl, front, user="alice", write=True):
    """A client logs in through front, reads the INBOX and (with write)
    changes a flag of the newest message: the mailbox is served, neither
    frozen nor fenced."""
    t0 = time.monotonic()
    c = Raw(cl.imap_addr(front)).login(user)
    try:
        c.ok("SELECT INBOX")
        got = c.fetch("1:*", "(UID FLAGS)")
        assert got, "an empty INBOX"
        if write:
            c.ok("UID STORE * +FLAGS ($Checked)")
            c.ok("UID STORE * -FLAGS ($Checked)")
        c.ok("LOGOUT")
    finally:
        c.close()
    took = time.monotonic() - t0
    assert took < FREEZE_TIMEOUT, f"IMAP through {front} took {took:.1f} s"


def move_files(node, user="alice"):
    """What a node keeps of user's mailbox: its store and any incoming copy."""
    mail = os.path.join(node.data_dir, "mail")
    if not os.path.isdir(mail):
        return []
    return sorted(f for f in os.listdir(mail)
                  if f == f"{user}.db" or f.startswith(f".move-in-{user}."))


def contains_view(after, before):
    """after keeps every folder of before with the same UIDVALIDITY and
    every message of before unchanged (uid, flags, modseq, size)."""
    (fa, sa), (fb, sb) = after, before
    assert sorted(fa) == sorted(fb), (sorted(fa), sorted(fb))
    assert sa == sb, (sa, sb)
    for name, (uv, _un, _hm, msgs) in fb.items():
        assert fa[name][0] == uv, f"{name}: UIDVALIDITY {uv} -> {fa[name][0]}"
        gone = sorted(set(msgs) - set(fa[name][3]))
        assert not gone, f"{name}: messages changed or lost: {gone[:3]}"


# ------------------------------------------------------------------ cancel

@pytest.mark.parametrize("phase", ["COPYING", "SYNCING"])
def test_cancel_while_copying_or_syncing_rolls_back(make_cluster, phase):
    """`ternctl move cancel` while the move is copying (resp. syncing),
    with alice receiving mail and using IMAP meanwhile: the move ends
    `cancelled`, the directory still names node-a with the same epoch,
    node-a serves alice as before (nothing frozen or fenced: deliveries
    and flag changes work through both nodes at once), node-b keeps no
    copy, every acknowledged message is there once and nothing that was
    there before changed."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"))
    acked = seed_mailbox(cl, "node-a")
    before = imap_view(cl, "node-a")
    epoch = user_row(cl, "node-a", "alice")["epoch"]
    pause_mover_at(cl, "node-b", phase, 4000)

    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    wait_paused(cl, "node-b", phase)
    out = cl["node-a"].ctl("move", "cancel", "alice").stdout.decode()
    assert "cancel requested" in out, out
    st = move_status(cl, "node-a", "alice")
    assert st["phase"] == phase.lower() and st["cancel_requested"] is True, st
    # the source serves alice while the mover is still paused
    for front in ("node-a", "node-b"):
        s = f"during {phase.lower()} via {front}"
        r = deliver(cl, front, "alice", s)
        assert r.code == 250, r
        acked.append(s)
    imap_works(cl, "node-b")

    st = wait_move_done(cl, "node-a", "alice")
    assert st["phase"] == "cancelled", st
    row = user_row(cl, "node-a", "alice")
    assert row["home"] == "node-a" and row["epoch"] == epoch, row
    assert re.search(r"move \d+: user=alice cancelled: on request", cl.log("node-b"))
    assert move_files(cl["node-b"]) == [], "node-b kept a copy of a cancelled move"
    assert "frozen for at most" not in cl.log("node-a"), "alice was frozen by a cancelled move"
    contains_view(imap_view(cl, "node-a"), before)
    for front in ("node-a", "node-b"):
        s = f"after cancel via {front}"
        r = deliver(cl, front, "alice", s)
        assert r.code == 250, r
        acked.append(s)
        imap_works(cl, front)
    wait_count(cl, len(acked))
    assert_once(cl, acked)


# ------------------------------------------------------------------ under load

class Load:
    """Writers and readers of one user's mailbox through given nodes, every
    transaction and command timed; what they saw is kept for the checks.
    Writers: LMTP connections and the flag toggling of the STORE/FETCH
    sessions. Readers: an IDLE session, and the STORE/FETCH sessions once
    the writers are told to stop (they then only FETCH, and open new
    sessions with EXAMINE, so the \\Recent bookkeeping does not change)."""

    def __init__(self, cl, user="alice"):
        self.cl, self.user = cl, user
        self.lock = threading.Lock()
        self.writers_stop = threading.Event()
        self.readers_stop = threading.Event()
        self.acked = []
        self.problems = []
        self.timings = []       # (seconds, what)
        self.denied = []        # writes refused with NO [UNAVAILABLE]
        self.byes = []          # (worker, line, monotonic time)
        self.ops = {}           # worker -> cycles completed
        self.sessions = {}      # worker -> sessions opened
        self.exists = {}        # worker -> EXISTS seen, per IDLE session
        self.expected = {}      # toggler -> (uids, flag, last state acknowledged or None)
        self.read_only = {}     # toggler -> Event: it writes no more
        self.lmtp_threads, self.imap_threads = [], []

    # ---- bookkeeping
    def timed(self, worker, what, seconds):
        with self.lock:
            self.timings.append((seconds, f"{worker}: {what}"))

    def problem(self, worker, text):
        with self.lock:
            self.problems.append(f"{worker}: {text}")

    def bump(self, worker):
        with self.lock:
            self.ops[worker] = self.ops.get(worker, 0) + 1

    def count(self, worker):
        with self.lock:
            return self.ops.get(worker, 0)

    def slowest(self):
        with self.lock:
            return max(self.timings, default=(0.0, "nothing"))

    def byes_of(self, worker):
        with self.lock:
            return [b for b in self.byes if b[0] == worker]

    # ---- LMTP
    def lmtp(self, front, k):
        name = f"lmtp{k}@{front}"
        rcpt = f"{self.user}@example.org"
        try:
            with LmtpConn(self.cl.lmtp_addr(front), timeout=IO_TIMEOUT) as c:
                c.lhlo()
                n = 0
                while not self.writers_stop.is_set():
                    subject = unique_subject(f"load {name} {n}")
                    n += 1
                    t0 = time.monotonic()
                    r = c.cmd(f"MAIL FROM:<{SENDER}>")
                    if r.code == 250:
                        r = c.cmd(f"RCPT TO:<{rcpt}>")
                        if r.code == 250:
                            r = c.cmd("DATA")
                            if r.code == 354:
                                c.send(dot_stuff(make_message(subject, to=rcpt)) + b".\r\n")
                                r = c.reply()
                    self.timed(name, "one LMTP transaction", time.monotonic() - t0)
                    if r.code == 250:
                        with self.lock:
                            self.acked.append(subject)
                        self.bump(name)
                    else:
                        self.problem(name, f"{subject!r}: {r}")
                        c.cmd("RSET")
                c.cmd("QUIT")
        except Exception as exc:       # a hang or a closed connection is a finding
            self.problem(name, f"LMTP connection failed: {exc!r}")

    # ---- IMAP
    def command(self, c, worker, text):
        """One command: (tagged text, or None when the server closed the
        connection first; untagged responses). BYEs are recorded; a BYE
        without [UNAVAILABLE] or a close without BYE is a problem."""
        tag = c.tag()
        t0 = time.monotonic()
        untagged, tagged = [], None
        try:
            c.send(f"{tag} {text}\r\n")
            while True:
                r = c.response()
                if r.startswith(tag.encode() + b" "):
                    tagged = r[len(tag) + 1:].decode(errors="replace")
                    break
                untagged.append(r)
        except (Closed, OSError):
            pass
        finally:
            self.timed(worker, text.split(" ", 2)[0] if not text.startswith("UID")
                       else " ".join(text.split()[:2]), time.monotonic() - t0)
        byes = [r for r in untagged if r.startswith(b"* BYE")]
        if text == "LOGOUT":
            return tagged, untagged
        for r in byes:
            self.bye(worker, r)
        if tagged is None and not byes:
            self.problem(worker, f"{text.split()[0]}: connection closed without BYE")
        return tagged, untagged

    def bye(self, worker, line):
        with self.lock:
            self.byes.append((worker, line, time.monotonic()))
        if b"[UNAVAILABLE]" not in line:
            self.problem(worker, f"BYE without [UNAVAILABLE]: {line!r}")

    def open_session(self, worker, front, select):
        """Connects through front, logs in and selects (or examines) INBOX;
        None after a recorded problem."""
        try:
            c = Raw(self.cl.imap_addr(front))
        except Exception as exc:
            self.problem(worker, f"cannot connect to {front}: {exc!r}")
            return None
        for text in (f'LOGIN {self.user} "{PASSWORD}"', f"{select} INBOX"):
            tagged, _ = self.command(c, worker, text)
            if tagged is None or not tagged.startswith("OK"):
                if tagged is not None:
                    self.problem(worker, f"{text.split()[0]} through {front}: {tagged}")
                c.close()
                return None
        with self.lock:
            self.sessions[worker] = self.sessions.get(worker, 0) + 1
        return c

    def idler(self, front):
        """Sits in IDLE on INBOX (examined); after a BYE logs in again
        through the same front and idles on."""
        name = f"idle@{front}"
        with self.lock:
            self.exists[name] = []
        while not self.readers_stop.is_set():
            c = self.open_session(name, front, "EXAMINE")
            if c is None:
                return
            try:
                with self.lock:
                    self.exists[name].append(0)
                tag = c.tag()
                t0 = time.monotonic()
                c.send(f"{tag} IDLE\r\n")
                first = c.response()
                self.timed(name, "IDLE", time.monotonic() - t0)
                if not first.startswith(b"+"):
                    self.problem(name, f"IDLE refused: {first!r}")
                    return
                ended = bye_seen = False
                while not self.readers_stop.is_set():
                    try:
                        r = c.poll(0.1)
                    except Closed:
                        if not bye_seen:
                            self.problem(name, "IDLE session closed without BYE")
                        ended = True
                        break
                    if r is None:
                        continue
                    if r.startswith(b"* BYE"):
                        bye_seen = True
                        self.bye(name, r)
                    elif re.match(rb"\* \d+ EXISTS", r):
                        with self.lock:
                            self.exists[name][-1] += 1
                        self.bump(name)
                    elif r.startswith(tag.encode() + b" "):
                        self.problem(name, f"the server ended IDLE: {r!r}")
                        return
                if ended:
                    continue        # the client reconnects
                t0 = time.monotonic()
                c.send("DONE\r\n")
                while True:
                    r = c.response()
                    if r.startswith(tag.encode() + b" "):
                        break
                self.timed(name, "IDLE DONE", time.monotonic() - t0)
                if not r[len(tag) + 1:].startswith(b"OK"):
                    self.problem(name, f"IDLE ended with {r!r}")
                self.command(c, name, "LOGOUT")
                return
            except Exception as exc:
                self.problem(name, f"{exc!r}")
                return
            finally:
                c.close()

    def toggler(self, front, uids, flag):
        """Sets and clears flag on uids, and after every change FETCHes
        them: the FETCH must show the last change the server acknowledged,
        also after the session ended at the switch and the client logged in
        again (to the new home). Once the writers stop it only FETCHes."""
        name = f"store@{front}"
        want_set = sorted(int(u) for u in re.findall(r"\d+", uids))
        uid_set = set(range(want_set[0], want_set[-1] + 1))
        state = None                    # unknown until a change is acknowledged
        done = threading.Event()
        with self.lock:
            self.read_only[name] = done
            self.expected[name] = (uid_set, flag, state)
        c = None
        try:
            while not self.readers_stop.is_set():
                writing = not self.writers_stop.is_set()
                if not writing:
                    done.set()
                if c is None:
                    c = self.open_session(name, front, "SELECT" if writing else "EXAMINE")
                    if c is None:
                        return
                if writing:
                    new = not state if state is not None else True
                    tagged, _ = self.command(
                        c, name, f"UID STORE {uids} {'+' if new else '-'}FLAGS ({flag})")
                    if tagged is None:          # ended mid-command: outcome unknown
                        state = None
                        c.close()
                        c = None
                        continue
                    if tagged.startswith("OK"):
                        state = new
                    elif tagged.startswith("NO [UNAVAILABLE]"):
                        with self.lock:         # documented for the fence's moment
                            self.denied.append((name, tagged))
                    else:
                        self.problem(name, f"STORE: {tagged}")
                    with self.lock:
                        self.expected[name] = (uid_set, flag, state)
                tagged, untagged = self.command(c, name, f"UID FETCH {uids} (FLAGS)")
                if tagged is None:
                    c.close()
                    c = None
                    continue
                if not tagged.startswith("OK"):
                    self.problem(name, f"FETCH: {tagged}")
                    continue
                seen = {}
                for r in untagged:
                    if re.match(rb"\* \d+ FETCH ", r):
                        _, d = fetch_dict(r)
                        if "UID" in d and "FLAGS" in d and int(d["UID"]) in uid_set:
                            seen[int(d["UID"])] = flag in [str(f) for f in d["FLAGS"]]
                if sorted(seen) != sorted(uid_set):
                    self.problem(name, f"FETCH {uids} answered for {sorted(seen)}")
                elif state is not None and any(v != state for v in seen.values()):
                    self.problem(name, f"read-your-writes: {flag} should be "
                                 f"{'set' if state else 'clear'}, FETCH shows {seen}")
                self.bump(name)
            if c is not None:
                self.command(c, name, "LOGOUT")
        except Exception as exc:
            self.problem(name, f"{exc!r}")
        finally:
            done.set()
            if c is not None:
                c.close()

    # ---- control
    def start(self, lmtp_fronts, idle_front, toggles):
        for k, front in enumerate(lmtp_fronts):
            self.lmtp_threads.append(threading.Thread(target=self.lmtp, args=(front, k),
                                                      daemon=True))
        self.imap_threads.append(threading.Thread(target=self.idler, args=(idle_front,),
                                                  daemon=True))
        for front, uids, flag in toggles:
            self.imap_threads.append(threading.Thread(target=self.toggler,
                                                      args=(front, uids, flag), daemon=True))
        for t in self.lmtp_threads + self.imap_threads:
            t.start()

    def stop_writers(self):
        """Stops the LMTP connections and the flag changes; returns once no
        write is in flight any more."""
        self.writers_stop.set()
        for t in self.lmtp_threads:
            t.join(IO_TIMEOUT * 2)
            assert not t.is_alive(), "an LMTP connection did not finish"
        for name, done in list(self.read_only.items()):
            assert done.wait(IO_TIMEOUT * 2), f"{name} did not stop writing"

    def stop(self):
        self.writers_stop.set()
        self.readers_stop.set()
        for t in self.lmtp_threads + self.imap_threads:
            t.join(IO_TIMEOUT * 2)
        alive = [t for t in self.lmtp_threads + self.imap_threads if t.is_alive()]
        assert not alive, f"{len(alive)} load threads did not finish"

    def check(self):
        """No problem, and nothing waited as long as the freeze's lease."""
        assert not self.problems, self.problems[:8]
        took, what = self.slowest()
        assert took < FREEZE_TIMEOUT, f"{what} took {took:.2f} s"


def flags_now(cl, front, uids, flag, user="alice"):
    c = Raw(cl.imap_addr(front)).login(user)
    try:
        c.ok("EXAMINE INBOX")
        got = c.fetch(uids, "(UID FLAGS)", uid=True)
        return {int(d["UID"]): flag in [str(f) for f in d["FLAGS"]] for d in got.values()}
    finally:
        c.close()


def test_move_under_full_load_keeps_the_mailbox(make_cluster):
    """The issue's load: 4 LMTP connections deliver to alice (2 through
    each node) and 3 IMAP sessions read and change flags (one in IDLE on
    the source, one logged in through the other node, one doing
    STORE/FETCH on the source) while alice moves node-a -> node-b:
    * no LMTP reply is a temporary failure, no LMTP transaction or IMAP
      command takes as long as move_freeze_timeout (5 s);
    * the sessions on the source end with `* BYE [UNAVAILABLE]` at the
      switch (docs/moving-mailboxes.md, step 4), and a client that logs in
      again through the same node gets the new home (IDLE sees new mail
      there, a FETCH shows the last flag change acknowledged before);
    * every message that got 250 is at node-b exactly once, the INBOX
      holds exactly the seeded and acknowledged messages, both nodes show
      the same mailbox, and what nobody touched is unchanged.
    Then alice moves back with --suspend-when-ready under the same load;
    the writers stop while the move is `ready`, the source's state is
    taken (IMAP: folders, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, UIDs, flags,
    modseqs, sizes, subscriptions) and `move complete` switches with the
    IDLE and the other sessions still open: the mailbox at the new home is
    exactly that state, through both nodes."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"),
                      move_freeze_timeout="5s")
    seeds = seed_mailbox(cl, "node-a")
    pre = imap_view(cl, "node-a")
    epoch = user_row(cl, "node-a", "alice")["epoch"]

    # ---- 1. node-a -> node-b with everything running through the switch
    load = Load(cl)
    load.start(lmtp_fronts=("node-a", "node-a", "node-b", "node-b"), idle_front="node-a",
               toggles=[("node-a", "1:3", "\\Flagged"), ("node-b", "4:6", "$Proxied")])
    idle, store_src, store_proxied = "idle@node-a", "store@node-a", "store@node-b"
    try:
        wait_for(lambda: len(load.acked) >= 20 and load.count(idle) >= 3
                 and load.count(store_src) >= 3 and load.count(store_proxied) >= 3,
                 30, "the load to run (deliveries, IDLE updates, STORE/FETCH cycles)")
        assert not load.byes, load.byes
        assert re.search(r"proxy: user=<alice> front=node-b home=node-a", cl.log("node-b"))
        t_start = time.monotonic()
        cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
        st = wait_move_done(cl, "node-a", "alice")
        t_done = time.monotonic()
        assert st["phase"] == "completed", st
        row = user_row(cl, "node-a", "alice")
        assert row["home"] == "node-b" and row["epoch"] == epoch + 1, row
        cl.homes["alice"] = "node-b"
        marks = {w: load.count(w) for w in (idle, store_src, store_proxied)}
        acked_at_switch = len(load.acked)
        # the sessions on the source end at the switch; clients come back
        wait_for(lambda: load.byes_of(idle) and load.byes_of(store_src), 15,
                 "the source's sessions to end with BYE at the switch")
        wait_for(lambda: len(load.acked) >= acked_at_switch + 20
                 and all(load.count(w) >= marks[w] + 3 for w in marks), 30,
                 "the load to run on at the new home")
    finally:
        load.stop()
    load.check()
    window = re.search(r"now homed here \(unavailable (\d+) ms", cl.log("node-b"))
    took, what = load.slowest()
    print(f"move 1: {len(load.acked)} deliveries acknowledged, unavailable "
          f"{window.group(1) if window else '?'} ms, slowest {what} {took * 1000:.0f} ms, "
          f"{len(load.denied)} writes refused during the fence, byes {len(load.byes)}")
    for w in (idle, store_src):
        byes = load.byes_of(w)
        assert len(byes) == 1, (w, byes)
        assert t_start < byes[0][2] < t_done + 10, f"{w}: BYE not at the switch"
    assert load.sessions[idle] >= 2 and load.exists[idle][0] >= 1 and load.exists[idle][-1] >= 1, (
        "IDLE: new mail was not announced before and after the reconnect", load.exists[idle])
    assert re.search(r"imap: user=alice, rip=\S+: mailbox moved to another node, session ended",
                     cl.log("node-a"))
    # the mailbox: every acknowledged message once, nothing else
    acked1 = seeds + load.acked
    wait_count(cl, len(acked1))
    assert_once(cl, acked1)
    via_b = imap_view(cl, "node-b")
    via_a = imap_view(cl, "node-a")
    assert via_a == via_b, "node-a and node-b show different mailboxes"
    folders, subs = via_b
    assert subs == pre[1] and sorted(folders) == sorted(pre[0])
    for name in ("Archive", "Projects/2026"):
        assert folders[name] == pre[0][name], f"{name} changed: {pre[0][name]} -> {folders[name]}"
    assert folders["INBOX"][0] == pre[0]["INBOX"][0], "INBOX UIDVALIDITY changed"
    untouched = [m for m in pre[0]["INBOX"][3] if m[0] > 6]
    assert set(untouched) <= set(folders["INBOX"][3]), "untouched seed messages changed"
    for name, (uid_set, flag, state) in load.expected.items():
        if state is not None:
            shown = flags_now(cl, "node-b", "1:6", flag)
            assert all(shown[u] == state for u in uid_set), (name, flag, state, shown)

    # ---- 2. node-b -> node-a: writers stop in `ready`; the source's state
    # just before the switch is what arrives
    load2 = Load(cl)
    load2.start(lmtp_fronts=("node-a", "node-a", "node-b", "node-b"), idle_front="node-b",
                toggles=[("node-b", "1:3", "\\Flagged"), ("node-a", "4:6", "$Proxied")])
    idle2, store2_src, store2_proxied = "idle@node-b", "store@node-b", "store@node-a"
    try:
        wait_for(lambda: len(load2.acked) >= 10 and load2.count(idle2) >= 1
                 and load2.count(store2_src) >= 3 and load2.count(store2_proxied) >= 3,
                 30, "the load to run again")
        cl["node-a"].ctl("move", "start", "alice", "--to", "node-a", "--suspend-when-ready")
        def is_ready():
            st = move_status(cl, "node-a", "alice")
            return st if st and st["phase"] == "ready" else None
        ready = wait_for(is_ready, 30, "the move to be ready under load")
        # ready keeps the copy in sync while mail arrives
        n = len(load2.acked)
        wait_for(lambda: len(load2.acked) >= n + 10
                 and move_status(cl, "node-a", "alice")["copied_modseq"] > ready["copied_modseq"],
                 30, "the ready move to sync what arrives")
        load2.stop_writers()
        acked2 = acked1 + load2.acked
        wait_count(cl, len(acked2))
        before = imap_view(cl, "node-b")
        assert imap_view(cl, "node-a") == before, "the front and the home disagree"
        assert user_row(cl, "node-a", "alice")["home"] == "node-b"
        marks = {w: load2.count(w) for w in (store2_src, store2_proxied)}
        assert not load2.byes, load2.byes
        t_start = time.monotonic()
        cl["node-a"].ctl("move", "complete", "alice")
        st = wait_move_done(cl, "node-a", "alice")
        t_done = time.monotonic()
        assert st["phase"] == "completed", st
        cl.homes["alice"] = "node-a"
        wait_for(lambda: load2.byes_of(idle2) and load2.byes_of(store2_src)
                 and load2.sessions.get(idle2, 0) >= 2
                 and all(load2.count(w) >= marks[w] + 3 for w in marks), 30,
                 "the source's sessions to end at the switch and the clients to read on")
    finally:
        load2.stop()
    load2.check()
    took, what = load2.slowest()
    print(f"move 2: {len(load2.acked)} deliveries acknowledged, slowest {what} "
          f"{took * 1000:.0f} ms, {len(load2.denied)} writes refused, byes {len(load2.byes)}")
    for w in (idle2, store2_src):
        byes = load2.byes_of(w)
        assert len(byes) == 1, (w, byes)
        assert t_start < byes[0][2] < t_done + 10, f"{w}: BYE not at the switch"
    assert user_row(cl, "node-b", "alice")["home"] == "node-a"
    for front in ("node-a", "node-b"):
        assert imap_view(cl, front) == before, (
            f"through {front} the moved mailbox differs from the source's before the switch")
    assert_once(cl, acked2)


# ------------------------------------------------------------------ batch

def test_batch_of_50_users_while_delivering(make_cluster):
    """50 users move node-a -> node-b with `ternctl move batch --parallel 4
    --wait` while 4 LMTP connections (2 through each node) deliver to all
    of them: the batch reports every user completed, never more than 4
    moves are active at once, no delivery gets anything but 250, every
    user is homed on node-b with every acknowledged message exactly once,
    and node-a keeps no copy."""
    users = [f"u{i:02d}" for i in range(50)]
    cl = make_cluster(users={u: "node-a" for u in users}, names=("node-a", "node-b"))
    acked = {u: [] for u in users}
    for u in users:
        r = deliver(cl, "node-a", u, f"{u} first")
        assert r.code == 250, r
        acked[u].append(f"{u} first")
    stop = threading.Event()
    problems, active_seen = [], []
    lock = threading.Lock()

    def lmtp_loop(front, k):
        n = 0
        try:
            with LmtpConn(cl.lmtp_addr(front), timeout=IO_TIMEOUT) as c:
                c.lhlo()
                while not stop.is_set():
                    u = users[(n * 4 + k) % len(users)]
                    subject = unique_subject(f"batch {u} {k} {n}")
                    n += 1
                    t0 = time.monotonic()
                    _, replies = c.deliver(SENDER, [f"{u}@example.org"],
                                           make_message(subject, to=f"{u}@example.org"))
                    took = time.monotonic() - t0
                    with lock:
                        if replies and replies[0].code == 250:
                            acked[u].append(subject)
                        else:
                            problems.append(f"{front}: {u}: {replies}")
                        if took >= FREEZE_TIMEOUT:
                            problems.append(f"{front}: a delivery to {u} took {took:.1f} s")
        except Exception as exc:
            with lock:
                problems.append(f"{front}: {exc!r}")

    def watch_active():
        while not stop.is_set():
            rows = cl["node-b"].ctl("move", "list", as_json=True)
            if isinstance(rows, dict):
                rows = next((v for v in rows.values() if isinstance(v, list)), [])
            with lock:
                active_seen.append(len(rows))

    threads = [threading.Thread(target=lmtp_loop, args=(f, k), daemon=True)
               for k, f in enumerate(("node-a", "node-b", "node-a", "node-b"))]
    threads.append(threading.Thread(target=watch_active, daemon=True))
    for t in threads:
        t.start()
    try:
        wait_for(lambda: sum(map(len, acked.values())) >= len(users) + 20, 30,
                 "deliveries to flow")
        t0 = time.monotonic()
        with lock:
            before = sum(map(len, acked.values()))
        rows = cl["node-a"].ctl("move", "batch", "--to", "node-b", "--from", "node-a",
                                "--parallel", "4", "--wait", "--timeout", "80s",
                                as_json=True, timeout=100)
        took = time.monotonic() - t0
        with lock:
            during = sum(map(len, acked.values())) - before
    finally:
        stop.set()
        for t in threads:
            t.join(IO_TIMEOUT * 2)
    assert not problems, problems[:5]
    assert during >= len(users), f"only {during} deliveries during the batch"
    if isinstance(rows, dict):
        rows = next(v for v in rows.values() if isinstance(v, list))
    assert sorted(r["user"] for r in rows) == users, rows
    assert all(r["result"] == "completed" for r in rows), [r for r in rows
                                                          if r["result"] != "completed"][:3]
    print(f"batch of {len(users)} in {took:.1f} s, {during} deliveries meanwhile, "
          f"at most {max(active_seen)} moves active")
    assert 2 <= max(active_seen) <= 4, active_seen
    for u in users:
        assert user_row(cl, "node-a", u)["home"] == "node-b", u
        cl.homes[u] = "node-b"
        wait_count(cl, len(acked[u]), u)
        assert_once(cl, acked[u], u)
    wait_for(lambda: not any(move_files(cl["node-a"], u) for u in users), 15,
             "node-a's copies to be removed")


# ------------------------------------------------------------------ the source crashes

def test_source_killed_while_copying(make_cluster):
    """The source is SIGKILLed while the move waits at COPYING (its channel
    to the source open, the copy not asked for yet): the move rolls back
    (`failed`, saying the source stopped answering), the directory still
    names node-a, node-b keeps nothing, alice was never frozen; once node-a
    is back it serves alice with her mailbox exactly as before, mail flows
    through both nodes, nothing is lost or doubled, and a new move then
    completes."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"),
                      move_freeze_timeout="2s")
    cl.expect_outage_errors()
    acked = seed_mailbox(cl, "node-a")
    before = imap_view(cl, "node-a")
    pause_mover_at(cl, "node-b", "COPYING", 4000)
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    wait_paused(cl, "node-b", "COPYING")
    cl.kill("node-a")
    st = wait_move_done(cl, "node-b", "alice")
    assert st["phase"] == "failed" and "SNAPSHOT" in st["last_error"], st
    assert user_row(cl, "node-b", "alice")["home"] == "node-a"
    assert move_files(cl["node-b"]) == [], "node-b kept a copy of a failed move"
    cl.start("node-a")
    assert "frozen for at most" not in cl.log("node-a")
    assert imap_view(cl, "node-a") == before
    r = deliver(cl, "node-a", "alice", "after restart via node-a")
    assert r.code == 250, r
    acked.append("after restart via node-a")
    # node-b's relay finds node-a again (a 4xx while it has not is fine)
    deliver_until(cl, "node-b", "alice", "after restart via node-b", time.monotonic() + 10)
    acked.append("after restart via node-b")
    imap_works(cl, "node-a")
    imap_works(cl, "node-b")
    wait_count(cl, len(acked))
    assert_once(cl, acked)

    cl["node-b"].extra_env = {}
    cl.stop("node-b")
    cl.start("node-b")
    kept = imap_view(cl, "node-a")
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    assert wait_move_done(cl, "node-a", "alice")["phase"] == "completed"
    cl.homes["alice"] = "node-b"
    assert imap_view(cl, "node-b") == kept
    assert_once(cl, acked)


def test_a_switch_delayed_past_the_fence_loses_no_mail(make_cluster):
    """The directory is busy (another writer holds it; every node waits up
    to 5 s for it) when the mover switches: the source's freeze lease ends
    meanwhile and a delivery it had parked is answered. Whatever the
    mover then does, the message that got 250 must be at alice's home:
    a switch that commits after the source served alice again must not
    happen: the switch's deadline is checked under the directory's write
    lock, so the move rolls back instead."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"),
                      move_freeze_timeout="5s")
    for name in cl.names():      # their heartbeats wait for the directory too
        cl[name].expect_error(r"node registry: heartbeat of node \S+ failed")
    acked = seed_mailbox(cl, "node-a")
    # the pause gives the test time to take the directory before the
    # switch; the mover's own deadline check still passes after it
    pause_mover_at(cl, "node-b", "FENCED", 2000)
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    wait_paused(cl, "node-b", "FENCED")
    subject = "while the switch waits"
    result = {}

    def send():
        t0 = time.monotonic()
        try:
            result["codes"] = deliver_until(cl, "node-a", "alice", subject, t0 + 12)
        except Exception as exc:
            result["error"] = exc
        result["took"] = time.monotonic() - t0

    db = sqlite3.connect(cl.directory, timeout=10, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")        # the mover's switch now waits for it
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        # the lease (5 s from the freeze) ends: the parked delivery is
        # answered (the switch waits up to the directory's busy timeout, 5 s)
        wait_for(lambda: "took" in result, 6.5, "the parked delivery to be answered")
    finally:
        db.execute("ROLLBACK")
        db.close()
    sender.join(IO_TIMEOUT)
    assert "codes" in result, result
    acked.append(subject)
    assert result["took"] < FREEZE_TIMEOUT + 1.0, result
    st = wait_move_done(cl, "node-a", "alice")
    home = user_row(cl, "node-a", "alice")["home"]
    window = re.search(r"now homed here \(.*?\)", cl.log("node-b"))
    print(f"move {st['phase']} ({st['last_error'] or 'no error'}), home {home}, delivery "
          f"{result['codes']} after {result['took']:.1f} s; {window.group(0) if window else ''}")
    cl.homes["alice"] = home
    wait_for(lambda: subject in inbox_subjects(cl), 5,
             f"the message acknowledged while the switch waited to be at {home}")
    assert_once(cl, acked)


def test_source_killed_right_after_the_switch(make_cluster):
    """The source is SIGKILLed as soon as the directory names node-b: the
    switch is the move's commit point, so the move is `completed`, alice is
    homed on node-b (epoch bumped) and served there at once, without the
    dead source and without waiting for any lease: her mailbox is exactly
    what it was on node-a, mail is accepted, flags change. When node-a is
    back it sends alice's mail and sessions to node-b (whatever it kept of
    her copy is not used): nothing lost, nothing doubled.

    The mover pauses after the switch (TERN_FAULT_MOVE_PAUSE_SWITCHED_MS),
    so the kill lands before the source was told to release and remove its
    copy; a build without that hook kills the source a few milliseconds
    after the switch (the test prints which)."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"),
                      move_freeze_timeout="2s")
    cl.expect_outage_errors()
    acked = seed_mailbox(cl, "node-a")
    before = imap_view(cl, "node-a")
    epoch = user_row(cl, "node-a", "alice")["epoch"]
    pause_mover_at(cl, "node-b", "SWITCHED", 3000)
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    wait_for(lambda: user_row(cl, "node-b", "alice")["home"] == "node-b", 30,
             "the directory to name node-b")
    cl.kill("node-a")
    t_kill = time.monotonic()
    removed = "this node's copy removed" in cl.log("node-a")
    print(f"the source was killed {'after' if removed else 'before'} it removed its copy; "
          f"mover paused after the switch: {'MOVE_PAUSE_SWITCHED stalls' in cl.log('node-b')}")
    cl.homes["alice"] = "node-b"
    # served by the new home at once
    assert imap_view(cl, "node-b") == before
    r = deliver(cl, "node-b", "alice", "after the kill via node-b")
    assert r.code == 250, r
    acked.append("after the kill via node-b")
    imap_works(cl, "node-b")
    assert time.monotonic() - t_kill < FREEZE_TIMEOUT
    st = wait_move_done(cl, "node-b", "alice")
    assert st["phase"] == "completed", st
    row = user_row(cl, "node-b", "alice")
    assert row["home"] == "node-b" and row["epoch"] == epoch + 1, row

    cl.start("node-a")
    deliver_until(cl, "node-a", "alice", "after restart via node-a", time.monotonic() + 10)
    acked.append("after restart via node-a")
    imap_works(cl, "node-a")
    wait_count(cl, len(acked))
    assert_once(cl, acked)
    assert imap_view(cl, "node-a") == imap_view(cl, "node-b")


# ------------------------------------------------------------------ cluster_tls

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A cluster CA and one node certificate it signed."""
    return cluster_tls_settings(make_cluster_pki(tmp_path_factory.mktemp("pki")))


def bodies(cl, front, folders, user="alice"):
    """{folder: {uid: sha256 of the message as IMAP serves it}}."""
    c = Raw(cl.imap_addr(front)).login(user)
    try:
        out = {}
        for name in sorted(folders):
            untagged = c.ok(f'EXAMINE "{name}"')
            out[name] = {}
            if any(re.match(rb"\* 0 EXISTS", u) for u in untagged):
                continue
            for d in c.fetch("1:*", "(UID BODY.PEEK[])").values():
                out[name][int(d["UID"])] = hashlib.sha256(d["BODY[]"]).hexdigest()
        return out
    finally:
        c.close()


def test_move_over_cluster_tls(make_cluster, pki):
    """With cluster_tls (every node-to-node connection TLS, certificates of
    the cluster CA) a mailbox of about 1 MB (many TLS records) moves
    node-a -> node-b: the move completes (the source's cluster port speaks
    only TLS, so the mover's channel did too), and through either node the
    mailbox is identical: folders, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ,
    UIDs, flags, modseqs, subscriptions, and every message byte for byte.
    Mail relayed over TLS reaches the new home afterwards."""
    names = ("node-a", "node-b")
    cl = make_cluster(users={"alice": "node-a"}, names=names,
                      node_settings={n: dict(pki) for n in names})
    acked = seed_mailbox(cl, "node-a")
    body = ("".join(chr(33 + (i * 7 + j) % 90) for j in range(70)) + "\r\n" for i in range(200))
    body = "".join(body)
    for i in range(70):
        front = names[i % 2]           # through node-b: relayed over TLS
        subject = f"big {i}"
        with LmtpConn(cl.lmtp_addr(front), timeout=IO_TIMEOUT) as c:
            c.lhlo()
            _, replies = c.deliver(SENDER, ["alice@example.org"],
                                   make_message(subject, body=body, to="alice@example.org"))
        assert replies[0].code == 250, replies
        acked.append(subject)
    c = Raw(cl.imap_addr("node-b")).login()       # proxied over TLS
    try:
        c.ok("SELECT INBOX")
        c.ok("STORE 20:30 +FLAGS (\\Answered $Forwarded)")
        c.ok("COPY 40:45 Archive")
    finally:
        c.close()
    wait_count(cl, len(acked))
    before = imap_view(cl, "node-a")
    content = bodies(cl, "node-a", before[0])
    size = os.path.getsize(cl["node-a"].mail_db("alice"))
    assert size > 1 << 20, size

    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")
    st = wait_move_done(cl, "node-a", "alice")
    assert st["phase"] == "completed", st
    assert st["bytes_done"] >= size, st
    cl.homes["alice"] = "node-b"
    for front in names:
        assert imap_view(cl, front) == before, front
        assert bodies(cl, front, before[0]) == content, front
    for name in names:
        assert "cluster_tls: node-to-node connections use TLS" in cl.log(name)
    assert "move: user=alice: channel opened by node node-b" in cl.log("node-a")
    wait_for(lambda: not move_files(cl["node-a"]), 10, "node-a's copy to be removed")
    for front in names:
        s = f"after the move via {front}"
        r = deliver(cl, front, "alice", s)
        assert r.code == 250, r
        acked.append(s)
    wait_count(cl, len(acked))
    assert_once(cl, acked)
