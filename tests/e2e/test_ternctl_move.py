"""ternctl move: the operator's side of online moves (issue 10). Two nodes
share one directory; they have no cluster_listen, so no mover runs (it
needs the cluster channel), and where a test needs a move to progress or
end it writes the directory itself (sqlite3), the way the mover records its
progress there."""

import os
import json
import re
import signal
import sqlite3
import subprocess
import time
from contextlib import closing

import pytest

from ternlib import CMD_TIMEOUT, PASSWORD_HASH, TERNCTL


def assert_ctl_error(proc, pattern, code=1):
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == code, (f"expected exit {code}, got {proc.returncode}: "
                                     f"{proc.stdout!r} {err!r}")
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("ternctl: "), \
        f"stderr must be one 'ternctl: ' line: {err!r}"
    assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"


def now_ms():
    return int(time.time() * 1000)


class Nodes:
    """node-a and node-b (and node-c, registered then stopped) sharing one
    directory, users homed on node-a unless said otherwise."""

    def __init__(self, make_ternd, tmp_path, users=("alice", "bob", "carol"), with_down=False):
        self.db = str(tmp_path / "shared" / "directory.db")
        os.makedirs(os.path.dirname(self.db), exist_ok=True)
        self.a = make_ternd(users=(), node_name="node-a", directory=self.db)
        self.b = make_ternd(users=(), node_name="node-b", directory=self.db)
        if with_down:
            c = make_ternd(users=(), node_name="node-c", directory=self.db)
            assert c.terminate() == 0
        for user in users:
            self.add_user(user, "node-a")

    def add_user(self, user, home):
        self.a.ctl("user", "add", user, "--home", home, "--hash", PASSWORD_HASH)

    def ctl(self, *args, **kwargs):
        return self.a.ctl(*args, **kwargs)

    def popen(self, *args):
        """ternctl in the background; stdout is a pipe, so not a terminal."""
        cmd = [TERNCTL, "--config", self.a.config_path] + [str(x) for x in args]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def sql(self, query, params=()):
        with closing(sqlite3.connect(self.db, timeout=10)) as con:
            rows = con.execute(query, params).fetchall()
            con.commit()
            return rows

    def move(self, move_id, **fields):
        """What the mover would write: fields of the moves row, and the
        times that go with a phase change."""
        t = now_ms()
        if "phase" in fields:
            fields.setdefault("phase_since", t)
            if fields["phase"] != "queued":
                self.sql("UPDATE moves SET started = ? WHERE id = ? AND started = 0",
                         (t - 1000, move_id))
            if fields["phase"] in ("completed", "failed", "cancelled"):
                fields.setdefault("finished", t)
        fields["updated"] = t
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.sql(f"UPDATE moves SET {sets} WHERE id = ?", (*fields.values(), move_id))

    def active_ids(self):
        return [r[0] for r in self.sql(
            "SELECT id FROM moves WHERE phase NOT IN ('completed', 'failed', 'cancelled') "
            "ORDER BY id")]

    def start(self, user, to="node-b", *extra):
        out = self.ctl("move", "start", user, "--to", to, *extra).stdout.decode()
        m = re.match(r"move (\d+) queued: ", out)
        assert m, out
        return int(m.group(1))


@pytest.fixture
def nodes(make_ternd, tmp_path):
    return Nodes(make_ternd, tmp_path)


def finish(proc, timeout=CMD_TIMEOUT):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# ---------------------------------------------------------------- start, status, list

def test_start_queues_a_move_seen_by_status_and_list(nodes):
    proc = nodes.ctl("move", "start", "alice@example.org", "--to", "node-b")
    assert proc.stderr == b"", proc.stderr       # node-b is up: no warning
    out = proc.stdout.decode()
    m = re.fullmatch(r"move (\d+) queued: alice from node-a to node-b\n", out)
    assert m, out
    move_id = int(m.group(1))

    st = nodes.ctl("move", "status", "alice", as_json=True)
    assert st["id"] == move_id
    assert (st["user"], st["source"], st["destination"], st["phase"]) == \
        ("alice", "node-a", "node-b", "queued")
    for key in ("messages_done", "messages_total", "bytes_done", "bytes_total", "rounds"):
        assert st[key] == 0, (key, st)
    assert st["suspend_when_ready"] is False and st["cancel_requested"] is False
    assert st["finished"] is False and st["last_error"] == ""
    assert st["bytes_per_s"] is None and st["eta_s"] is None
    assert "waiting for the mover on node-b" in st["waiting"], st
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", st["created"]), st

    text = nodes.ctl("move", "status", "alice").stdout.decode()
    fields = dict(re.match(r"(\w+):\s+(.*)", line).groups() for line in text.splitlines())
    assert fields["move"] == str(move_id) and fields["phase"].startswith("queued"), text
    assert fields["messages"] == "unknown (not counted yet)", text
    assert fields["rate"].startswith("unknown"), text
    assert "waiting for the mover on node-b" in fields["waiting"], text
    assert fields["last_error"] == "-" and fields["suspend_when_ready"] == "no", text

    # No USER: every active move, an array in JSON.
    every = nodes.ctl("move", "status", as_json=True)
    assert [s["id"] for s in every] == [move_id]
    assert "user:" in nodes.ctl("move", "status").stdout.decode()

    rows = nodes.ctl("move", "list", as_json=True)
    assert len(rows) == 1 and rows[0]["id"] == move_id and rows[0]["phase"] == "queued"
    assert rows[0]["progress"] == "-"
    lines = nodes.ctl("move", "list").stdout.decode().splitlines()
    assert lines[0].split() == ["ID", "USER", "SOURCE", "DESTINATION", "PHASE", "PROGRESS",
                                "UPDATED"], lines
    assert lines[1].split()[:6] == [str(move_id), "alice", "node-a", "node-b", "queued", "-"]

    # Progress as the mover reports it: counts, percent, rate, the reason to wait.
    nodes.move(move_id, phase="copying", messages_total=200, messages_done=50,
               bytes_total=4 * 1048576, bytes_done=1048576,
               wait_reason="waiting for 2 in-flight deliveries")
    st = nodes.ctl("move", "status", "alice", as_json=True)
    assert (st["phase"], st["messages_done"], st["messages_total"]) == ("copying", 50, 200)
    assert st["progress"] == "25%" and st["bytes_per_s"] > 0 and st["eta_s"] is not None
    assert st["waiting"] == "waiting for 2 in-flight deliveries"
    assert nodes.ctl("move", "list", as_json=True)[0]["progress"] == "25%"
    text = nodes.ctl("move", "status", "alice").stdout.decode()
    assert re.search(r"messages:\s+50 of 200 \(25%\)", text), text
    assert re.search(r"bytes:\s+1\.0M of 4\.0M \(25%\)", text), text

    # A finished move leaves the active list, stays in --all and in status USER.
    nodes.move(move_id, phase="failed", last_error="disk full on node-b")
    assert nodes.ctl("move", "list", as_json=True) == []
    assert nodes.ctl("move", "status").stdout.decode() == "no active moves\n"
    all_rows = nodes.ctl("move", "list", "--all", as_json=True)
    assert [(r["id"], r["phase"]) for r in all_rows] == [(move_id, "failed")]
    st = nodes.ctl("move", "status", "alice", as_json=True)
    assert st["phase"] == "failed" and st["last_error"] == "disk full on node-b"
    assert st["waiting"] is None

    # The user may move again; status USER shows the new, active move.
    second = nodes.start("alice")
    assert second != move_id
    assert nodes.ctl("move", "status", "alice", as_json=True)["id"] == second


def test_start_refusals(make_ternd, tmp_path):
    nodes = Nodes(make_ternd, tmp_path, with_down=True)
    assert_ctl_error(nodes.ctl("move", "start", "nobody", "--to", "node-b", check=False),
                     r"user 'nobody' not found")
    assert_ctl_error(nodes.ctl("move", "start", "alice", "--to", "node-z", check=False),
                     r"unknown node 'node-z'")
    assert_ctl_error(nodes.ctl("move", "start", "alice", "--to", "node-a", check=False),
                     r"already homed on node-a")
    assert_ctl_error(nodes.ctl("move", "start", "alice", check=False),
                     r"--to NODE is required", code=2)
    assert_ctl_error(nodes.ctl("move", "start", "alice", "--to", "node-b", "--timeout", "1s",
                               check=False), r"--timeout needs --wait", code=2)
    assert_ctl_error(nodes.ctl("move", "start", "alice", "--to", "node-b", "--wait",
                               "--timeout", "soon", check=False), r"invalid duration", code=2)
    assert nodes.ctl("move", "list", as_json=True) == [], "a refused start created a move"

    move_id = nodes.start("alice")
    assert_ctl_error(nodes.ctl("move", "start", "alice", "--to", "node-b", check=False),
                     rf"'alice' is already moving: move {move_id} from node-a to node-b")
    assert_ctl_error(nodes.ctl("move", "start", "alice", "--to", "node-c", check=False),
                     r"already moving")

    # A destination that is down: a warning, and the move is queued anyway.
    proc = nodes.ctl("move", "start", "bob", "--to", "node-c")
    err = proc.stderr.decode()
    assert re.fullmatch(r"ternctl: warning: destination node-c is down \(last heartbeat "
                        r"\S+\): the move stays queued until its mover runs\n", err), err
    st = nodes.ctl("move", "status", "bob", as_json=True)
    assert st["phase"] == "queued" and st["destination"] == "node-c"
    assert st["waiting"].startswith("destination node-c down since "), st

    # Commands on a user without an active move.
    for verb in ("cancel", "complete"):
        assert_ctl_error(nodes.ctl("move", verb, "carol", check=False),
                         r"user 'carol' has no active move")
    assert_ctl_error(nodes.ctl("move", "status", "carol", check=False), r"'carol' has no moves")
    assert_ctl_error(nodes.ctl("move", "status", "nobody", check=False), r"'nobody' not found")
    assert_ctl_error(nodes.ctl("move", "frobnicate", check=False), r"unknown subcommand", code=2)


# ---------------------------------------------------------------- cancel, complete

def test_cancel_marks_the_move(nodes):
    move_id = nodes.start("alice")
    out = nodes.ctl("move", "cancel", "alice").stdout.decode()
    assert re.match(rf"move {move_id} of alice \(phase queued\): cancel requested", out), out
    st = nodes.ctl("move", "status", "alice", as_json=True)
    assert st["cancel_requested"] is True and st["phase"] == "queued"
    assert st["waiting"].startswith("cancel requested"), st
    # Again: idempotent. JSON gives the move.
    assert nodes.ctl("move", "cancel", "alice", as_json=True)["cancel_requested"] is True
    assert_ctl_error(nodes.ctl("move", "complete", "alice", check=False), r"being cancelled")
    # The mover rolls it back; then there is nothing left to cancel.
    nodes.move(move_id, phase="cancelled")
    assert_ctl_error(nodes.ctl("move", "cancel", "alice", check=False), r"no active move")


def test_complete_clears_the_suspend_flag(nodes):
    move_id = nodes.start("bob", "node-b", "--suspend-when-ready")
    assert nodes.ctl("move", "status", "bob", as_json=True)["suspend_when_ready"] is True
    nodes.move(move_id, phase="ready", rounds=3, copied_modseq=812)
    st = nodes.ctl("move", "status", "bob", as_json=True)
    assert st["waiting"] == "held in ready by --suspend-when-ready: run 'ternctl move " \
                            "complete bob'", st
    out = nodes.ctl("move", "complete", "bob").stdout.decode()
    assert out == f"move {move_id} of bob (phase ready): released: the mover finalizes it now\n"
    st = nodes.ctl("move", "status", "bob", as_json=True)
    assert st["suspend_when_ready"] is False and st["phase"] == "ready"
    assert nodes.sql("SELECT suspend_when_ready FROM moves WHERE id = ?", (move_id,)) == [(0,)]


# ---------------------------------------------------------------- batch

def test_batch_from_node_queues_one_move_per_user(nodes):
    nodes.add_user("dave", "node-b")
    assert_ctl_error(nodes.ctl("move", "batch", "--to", "node-b", check=False),
                     r"one of --from NODE and --users FILE", code=2)
    assert_ctl_error(nodes.ctl("move", "batch", "--to", "node-b", "--from", "node-a",
                               "--parallel", "2", check=False), r"--parallel needs --wait",
                     code=2)
    proc = nodes.ctl("move", "batch", "--from", "node-a", "--to", "node-b")
    out = proc.stdout.decode()
    for user in ("alice", "bob", "carol"):
        assert re.search(rf"^{user}: move \d+ queued$", out, re.M), out
    assert "dave" not in out
    assert "3 moves queued, 0 skipped, 0 refused" in out, out
    rows = nodes.ctl("move", "list", as_json=True)
    assert sorted((r["user"], r["source"], r["destination"], r["phase"]) for r in rows) == [
        (u, "node-a", "node-b", "queued") for u in ("alice", "bob", "carol")]


def test_batch_from_file(nodes, tmp_path):
    nodes.add_user("dave", "node-b")
    users = tmp_path / "users.txt"
    users.write_text("# wave 1\nalice\n\n  bob   # the boss\ndave\nalice\n")
    rows = nodes.ctl("move", "batch", "--users", users, "--to", "node-b", as_json=True)
    result = {r["user"]: r for r in rows}
    assert sorted(result) == ["alice", "bob", "dave"], rows
    assert result["alice"]["result"] == "queued" and result["alice"]["id"] > 0
    assert result["dave"]["result"] == "skipped" and "already homed" in result["dave"]["error"]
    assert sorted(r["user"] for r in nodes.ctl("move", "list", as_json=True)) == ["alice", "bob"]

    bad = tmp_path / "bad.txt"
    bad.write_text("carol\nnobody\nbob\n")
    proc = nodes.ctl("move", "batch", "--users", bad, "--to", "node-b", check=False)
    out = proc.stdout.decode()
    assert re.search(r"^carol: move \d+ queued$", out, re.M), out
    assert re.search(r"^nobody: refused: user 'nobody' not found$", out, re.M), out
    assert re.search(r"^bob: refused: user 'bob' is already moving", out, re.M), out
    assert_ctl_error(proc, r"batch: 2 of 3 users were not moved")


def test_batch_wait_runs_at_most_parallel_moves(nodes):
    nodes.add_user("erin", "node-a")
    proc = nodes.popen("move", "batch", "--from", "node-a", "--to", "node-b", "--wait",
                       "--parallel", "2", "--timeout", "30s")
    seen = set()
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        active = nodes.active_ids()
        assert len(active) <= 2, f"more than --parallel 2 moves active: {active}"
        seen.update(active)
        if active:
            nodes.move(active[0], phase="completed")
        time.sleep(0.3)
    code, out, err = finish(proc)
    assert code == 0, (out, err)
    assert len(seen) == 4, seen
    assert "batch: 4 users: 4 completed, 0 failed, 0 cancelled" in out, out
    for user in ("alice", "bob", "carol", "erin"):
        assert re.search(rf"^{user}: move \d+ completed: {user} moved from node-a to node-b",
                         out, re.M), out


# ---------------------------------------------------------------- --wait

def wait_for_move(nodes, user, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = nodes.sql("SELECT id FROM moves WHERE user = ? AND phase NOT IN "
                         "('completed', 'failed', 'cancelled')", (user,))
        if rows:
            return rows[0][0]
        time.sleep(0.05)
    raise AssertionError(f"no move of {user} appeared")


def test_wait_until_completed(nodes):
    proc = nodes.popen("move", "start", "alice", "--to", "node-b", "--wait", "--timeout", "60s")
    move_id = wait_for_move(nodes, "alice")
    time.sleep(0.7)
    nodes.move(move_id, phase="copying", messages_total=100, messages_done=40,
               bytes_total=409600, bytes_done=163840, runner="node-b")
    time.sleep(0.7)
    nodes.move(move_id, phase="syncing", messages_done=100, bytes_done=409600, rounds=1,
               copied_modseq=120)
    time.sleep(0.7)
    nodes.move(move_id, phase="finalizing")
    time.sleep(0.7)
    nodes.sql("UPDATE users SET home = 'node-b', epoch = epoch + 1 WHERE name = 'alice'")
    nodes.move(move_id, phase="completed", rounds=2)
    code, out, err = finish(proc)
    assert code == 0 and err == "", (out, err)
    lines = out.splitlines()
    assert lines[0] == f"move {move_id} queued: alice from node-a to node-b", lines
    phases = [re.match(rf"move {move_id} alice (\w+)", line).group(1) for line in lines[1:-1]]
    assert phases == ["queued", "copying", "syncing", "finalizing"], lines
    assert re.match(rf"move {move_id} alice copying: 40/100 messages, 160K/400K, ", lines[2]), lines
    assert re.fullmatch(rf"move {move_id} completed: alice moved from node-a to node-b "
                        r"\(100 messages, 400K, 2 sync rounds\) in \S+", lines[-1]), lines
    assert "\r" not in out and "\033" not in out, "no terminal codes without a terminal"


def test_wait_on_failed_and_cancelled_moves_exits_1(nodes):
    proc = nodes.popen("move", "start", "alice", "--to", "node-b", "--wait")
    move_id = wait_for_move(nodes, "alice")
    nodes.move(move_id, phase="copying")
    time.sleep(0.5)
    nodes.move(move_id, phase="failed", last_error="disk full on node-b")
    code, out, err = finish(proc)
    assert code == 1, (out, err)
    assert err == f"ternctl: move {move_id} of 'alice' failed: disk full on node-b\n", err
    assert re.search(rf"^move {move_id} failed after \S+: alice stays on node-a; error: disk "
                     r"full on node-b$", out, re.M), out

    # complete --wait on a held move; the mover cancels it instead.
    bob = nodes.start("bob", "node-b", "--suspend-when-ready")
    nodes.move(bob, phase="ready")
    proc = nodes.popen("move", "complete", "bob", "--wait", "--timeout", "30s")
    deadline = time.monotonic() + 10
    while nodes.sql("SELECT suspend_when_ready FROM moves WHERE id = ?", (bob,)) != [(0,)]:
        assert time.monotonic() < deadline, "complete did not clear the flag"
        time.sleep(0.05)
    nodes.move(bob, phase="cancelled")
    code, out, err = finish(proc)
    assert code == 1, (out, err)
    assert err == f"ternctl: move {bob} of 'bob' was cancelled\n", err
    assert re.search(rf"^move {bob} cancelled after \S+: bob stays on node-a$", out, re.M), out


def test_complete_wait_json_until_completed(nodes):
    carol = nodes.start("carol", "node-b", "--suspend-when-ready")
    nodes.move(carol, phase="ready")
    proc = nodes.popen("--json", "move", "complete", "carol", "--wait")
    deadline = time.monotonic() + 10
    while nodes.sql("SELECT suspend_when_ready FROM moves WHERE id = ?", (carol,)) != [(0,)]:
        assert time.monotonic() < deadline, "complete did not clear the flag"
        time.sleep(0.05)
    nodes.move(carol, phase="finalizing")
    nodes.move(carol, phase="completed")
    code, out, err = finish(proc)
    assert code == 0 and err == "", (out, err)
    st = json.loads(out)
    assert st["id"] == carol and st["phase"] == "completed" and st["progress"] == "100%"


def test_wait_timeout_exits_2_and_leaves_the_move(nodes):
    t0 = time.monotonic()
    proc = nodes.ctl("move", "start", "alice", "--to", "node-b", "--wait", "--timeout", "1s",
                     check=False)
    took = time.monotonic() - t0
    assert_ctl_error(proc, r"timed out after 1\.0s waiting for move \d+ \(phase queued\); it "
                           r"keeps running", code=2)
    assert 0.9 <= took < 5, took
    out = proc.stdout.decode()
    assert re.search(r"^move \d+ alice queued: waiting for the mover on node-b to start it$", out,
                     re.M), out
    assert nodes.ctl("move", "status", "alice", as_json=True)["phase"] == "queued"


def test_ctrl_c_while_waiting_leaves_the_move_running(nodes):
    proc = nodes.popen("move", "start", "alice", "--to", "node-b", "--wait")
    move_id = wait_for_move(nodes, "alice")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, timeout=5)
    assert code == 130, (out, err)
    assert err == (f"ternctl: interrupted: move {move_id} keeps running (see 'ternctl move "
                   f"status alice'; 'ternctl move cancel alice' stops it)\n"), err
    assert nodes.ctl("move", "status", "alice", as_json=True)["phase"] == "queued"


def test_help_documents_the_move_commands(nodes):
    """Each verb's synopsis, as the command table has it (the usage errors
    quote it), is in --help; so are --wait's poll interval and exit codes."""
    text = nodes.ctl("--help").stdout.decode()
    flat = " ".join(text.split())
    for verb in ("start", "status", "list", "complete", "cancel", "batch"):
        proc = nodes.ctl("move", verb, "--no-such-option", check=False)
        assert proc.returncode == 2, proc
        m = re.search(r"\(usage: ternctl (move .*)\)$", proc.stderr.decode().strip())
        assert m, proc.stderr
        assert " ".join(m.group(1).split()) in flat, m.group(1)
    assert "every 200 ms" in flat and "2 when --timeout" in flat and "130 on Ctrl-C" in flat
    section = text[text.index("Moves ("):text.index("  help")]
    assert max(len(line) for line in section.splitlines()) <= 80
