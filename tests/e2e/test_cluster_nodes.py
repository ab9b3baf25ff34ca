"""The node registry of a cluster: several ternd nodes share one directory,
each registers itself with its addresses and keeps a heartbeat there, and
`ternctl node list` tells which are up. A node killed shows down once its
heartbeat is stale, one stopped with SIGTERM at once; a second node under a
name that a live node holds, with other addresses, refuses to start; a
crashed node restarted with its own addresses takes its row back.

Nothing here needs the cluster channel itself: cluster_listen is only an
address to register (and must be free, in case the node listens on it)."""

import os
import subprocess

import pytest

import ternlib

SECRET = "cluster-secret-for-the-e2e-tests"
# TERN_NODE_DOWN_AFTER_MS (5 s) plus slack for a loaded machine.
DOWN_DEADLINE = 5.0 + 5.0


def node_settings(shared_dir, name):
    return {
        "node_name": name,
        "directory": os.path.join(shared_dir, "directory.db"),
        "imap_listen": f"127.0.0.1:{ternlib.free_port()}",
        "pop3_listen": f"127.0.0.1:{ternlib.free_port()}",
        "cluster_listen": f"127.0.0.1:{ternlib.free_port()}",
        "cluster_secret": SECRET,
    }


def node_rows(node):
    """ternctl --json node list, as {name: row}."""
    rows = node.ctl("node", "list", as_json=True)
    assert isinstance(rows, list)
    return {row["name"]: row for row in rows}


def status_of(node, name):
    return node_rows(node)[name]["status"]


def ternd_version():
    out = subprocess.run([ternlib.TERNCTL, "--version"], capture_output=True, check=True,
                         timeout=ternlib.CMD_TIMEOUT).stdout.decode().split()
    return out[-1]


@pytest.fixture
def cluster(make_ternd, tmp_path):
    """Three started nodes, node-a, node-b and node-c, on one directory."""
    shared = tmp_path / "shared"
    shared.mkdir()

    def make(name, start=True):
        return make_ternd(start=start, users=(), **node_settings(str(shared), name))

    nodes = [make(f"node-{c}") for c in "abc"]
    return shared, make, nodes


def expect_row(row, node):
    s = node.settings
    assert row["lmtp"] == s["lmtp_listen"]
    assert row["imap"] == s["imap_listen"]
    assert row["pop3"] == s["pop3_listen"]
    assert row["cluster"] == s["cluster_listen"]
    assert row["admin"] == ""


def test_nodes_listed_up_with_their_addresses(cluster):
    _, _, nodes = cluster
    rows = node_rows(nodes[0])
    assert sorted(rows) == ["node-a", "node-b", "node-c"]
    version = ternd_version()
    for node in nodes:
        row = rows[node.settings["node_name"]]
        expect_row(row, node)
        assert row["status"] == "up", row
        assert row["stopped"] is False
        assert row["version"] == version
        assert row["started"].endswith("Z") and row["heartbeat"].endswith("Z")
        assert 0 <= row["heartbeat_age_ms"] < 5000
    # Each node has a number of its own (its delivery ids' prefix).
    numbers = [rows[n.settings["node_name"]]["number"] for n in nodes]
    assert len(set(numbers)) == 3 and all(1 <= x <= 2047 for x in numbers), numbers
    # Every node sees the same table.
    assert node_rows(nodes[2]).keys() == rows.keys()

    # The heartbeat keeps moving: a beat lands at least every second.
    def beat_seen():
        row = node_rows(nodes[1])["node-b"]
        return row["heartbeat"] != row["started"] and row["heartbeat_age_ms"] < 2000
    ternlib.wait_for(beat_seen, 10.0, "node-b's heartbeat to move past its start time")

    # The text table: a header and one line per node, blanks never empty.
    text = nodes[0].ctl("node", "list").stdout.decode().splitlines()
    assert text[0].split() == ["NAME", "CLUSTER", "LMTP", "IMAP", "POP3", "VERSION",
                               "STARTED", "HEARTBEAT", "STATUS"]
    assert len(text) == 4
    for line, node in zip(text[1:], nodes):
        cells = line.split()
        assert cells[0] == node.settings["node_name"]
        assert cells[1] == node.settings["cluster_listen"]
        assert cells[-1] == "up"


def test_killed_node_goes_down_then_restarts(cluster):
    _, _, nodes = cluster
    victim = nodes[1]
    victim.kill()
    # Not stopped cleanly: down only once the heartbeat is stale.
    row = node_rows(nodes[0])["node-b"]
    assert row["stopped"] is False
    ternlib.wait_for(lambda: status_of(nodes[0], "node-b") == "down", DOWN_DEADLINE,
                     "node-b to show down after SIGKILL")
    rows = node_rows(nodes[2])
    assert rows["node-b"]["heartbeat_age_ms"] >= 5000
    assert rows["node-a"]["status"] == "up" and rows["node-c"]["status"] == "up"

    # Restarted with the same name and addresses: its row is its own again.
    number = node_rows(nodes[0])["node-b"]["number"]
    victim.start(new_port=False)
    row = node_rows(nodes[0])["node-b"]
    assert row["status"] == "up" and row["number"] == number
    expect_row(row, victim)
    assert "node node-b registered" in victim.stderr_text()


def test_restart_right_after_a_crash(cluster):
    # Same addresses while the old heartbeat is still fresh: a restart after
    # a crash, not a second node, so it is taken over at once.
    _, _, nodes = cluster
    victim = nodes[2]
    before = node_rows(nodes[0])["node-c"]
    victim.kill()
    victim.start(new_port=False)
    row = node_rows(nodes[0])["node-c"]
    assert row["status"] == "up"
    assert row["started"] >= before["started"]
    expect_row(row, victim)


def test_sigterm_shows_down_at_once(cluster):
    _, _, nodes = cluster
    assert nodes[0].terminate() == 0
    row = node_rows(nodes[1])["node-a"]
    assert row["status"] == "down", row
    assert row["stopped"] is True
    assert "node node-a stopped" in nodes[0].stderr_text()
    # The others are untouched.
    assert status_of(nodes[1], "node-b") == "up"


def run_to_exit(node):
    """Starts ternd for node's settings and waits (bounded) for it to exit;
    returns (exit status, stderr)."""
    node.settings["lmtp_listen"] = f"127.0.0.1:{ternlib.free_port()}"
    node.write_config()
    proc = subprocess.run([ternlib.TERND, "--config", node.config_path], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=ternlib.START_TIMEOUT)
    return proc.returncode, proc.stderr.decode(errors="replace")


def test_same_name_other_addresses_refused(cluster, tmp_path):
    shared, make, nodes = cluster
    first = nodes[0]
    impostor = ternlib.Ternd(str(tmp_path / "impostor"),
                             node_settings(str(shared), "node-a"))
    rc, err = run_to_exit(impostor)
    assert rc == 1, err
    lines = [l for l in err.splitlines() if "already running" in l]
    assert len(lines) == 1, err
    line = lines[0]
    for key in ("cluster_listen", "lmtp_listen", "imap_listen", "pop3_listen"):
        assert first.settings[key] in line, (key, line)
    assert "last heartbeat" in line and " ms ago" in line
    assert "node_name" in line
    # Nothing changed for the node that holds the name.
    row = node_rows(first)["node-a"]
    assert row["status"] == "up"
    expect_row(row, first)

    # Once the holder stopped cleanly, the name is free for other addresses.
    assert first.terminate() == 0
    successor = make("node-a", start=False)
    for key in ("imap_listen", "pop3_listen", "cluster_listen"):
        successor.settings[key] = impostor.settings[key]
    successor.start()
    row = node_rows(successor)["node-a"]
    assert row["status"] == "up"
    assert row["imap"] == impostor.settings["imap_listen"]
    assert row["cluster"] == impostor.settings["cluster_listen"]
