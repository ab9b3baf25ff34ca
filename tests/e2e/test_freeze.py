"""Freezing a user (issue 10, "Never hang"; src/server/freeze.h): what a
client and an MTA see while a user is frozen by the final phase of a move,
driven through the node's "control" cluster service (control_client.py).

A frozen user's delivery or logon is parked, not refused: it is served when
the freeze ends (here, or relayed/proxied to the new home), and gets a
temporary error when move_freeze_timeout passes first. Other users are never
held up. A lock leaked on the move-check path (TERN_FAULT_LOCK_LEAK) costs
only that user's requests a temporary error, and the watchdog names it."""

import re
import select
import sqlite3
import statistics
import time

import pytest

from cluster_helpers import SENDER, SLACK, Pop3, cluster_factory
from control_client import Control
from imap_helpers import Raw
from ternlib import PASSWORD, LmtpConn, make_message, unique_subject

FREEZE_TIMEOUT = 2.0        # move_freeze_timeout of the test nodes, seconds
SETTINGS = {"move_freeze_timeout": f"{int(FREEZE_TIMEOUT * 1000)}ms",
            "watchdog_threshold": "500ms"}
LONG_LEASE_MS = 30000


@pytest.fixture
def make_cluster(tmp_path):
    yield from cluster_factory(tmp_path)


def one_node(make_cluster, users=("alice", "bob")):
    return make_cluster(users={u: "node-a" for u in users}, names=("node-a",), **SETTINGS)


def control(cl, name="node-a"):
    return Control(cl.cluster_addr(name))


def silent(sock_owner, seconds):
    """True if nothing arrives on the connection within `seconds` (the
    request is parked, not answered)."""
    if sock_owner.buf:
        return False
    r, _, _ = select.select([sock_owner.sock], [], [], seconds)
    return not r


def start_rcpt(cl, user, node="node-a"):
    c = LmtpConn(cl.lmtp_addr(node))
    c.lhlo()
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    c.send(f"RCPT TO:<{user}@example.org>\r\n")
    return c


def finish_data(c, msg):
    r = c.cmd("DATA")
    assert r.code == 354, r
    c.send(msg + b".\r\n")
    return c.reply()


def test_parked_delivery_gets_250_after_release_stay(make_cluster):
    cl = one_node(make_cluster)
    subject = unique_subject("parked")
    msg = make_message(subject)
    with control(cl) as ctl:
        assert ctl.status("alice") == "ACTIVE"
        assert ctl.freeze("alice", LONG_LEASE_MS) == "OK"
        assert re.fullmatch(r"FROZEN \d+", ctl.status("alice")), ctl.status("alice")
        with start_rcpt(cl, "alice") as c:
            assert silent(c, 0.3), "a frozen user's RCPT was answered at once"
            t0 = time.monotonic()
            assert ctl.release_stay("alice") == "OK"
            r = c.reply()
            waited = time.monotonic() - t0
            assert r.code == 250, f"RCPT after RELEASE stay: expected 250, got {r!r}"
            final = finish_data(c, msg)
            assert final.code == 250, final
        assert ctl.status("alice") == "ACTIVE"
        assert ctl.release_stay("alice") == "NO not frozen"
    assert cl.find("alice", subject) is not None
    print(f"\nparked RCPT answered {waited * 1000:.1f} ms after RELEASE")


def test_parked_delivery_times_out_with_451_420(make_cluster):
    cl = one_node(make_cluster)
    with control(cl) as ctl:
        assert ctl.freeze("alice", LONG_LEASE_MS) == "OK"
        with start_rcpt(cl, "alice") as c:
            t0 = time.monotonic()
            r = c.reply()
            took = time.monotonic() - t0
            assert r.code == 451 and r.enhanced() == "4.2.0", f"expected 451 4.2.0, got {r!r}"
            assert FREEZE_TIMEOUT - 0.3 <= took <= FREEZE_TIMEOUT + SLACK, took
            # the session goes on: bob is delivered in the same transaction
            c.expect("RCPT TO:<bob@example.org>", 250)
        assert ctl.release_stay("alice") == "OK"
    cl.wait_log("node-a", r"watchdog: lmtp rcpt for alice parked \d+ ms: frozen by a move",
                "the parked RCPT")


def test_imap_logon_parked_then_served(make_cluster):
    cl = one_node(make_cluster)
    with control(cl) as ctl:
        assert ctl.freeze("alice", LONG_LEASE_MS) == "OK"
        with Raw(cl.imap_addr("node-a")) as imap:
            imap.send(f'L1 LOGIN alice "{PASSWORD}"\r\n')
            assert imap.poll(0.3) is None, "a frozen user's LOGIN was answered at once"
            assert ctl.release_stay("alice") == "OK"
            _, tagged = imap.wait("L1")
            assert tagged.startswith("OK"), tagged
            imap.ok("SELECT INBOX")


def test_imap_logon_times_out_unavailable(make_cluster):
    cl = one_node(make_cluster)
    with control(cl) as ctl:
        assert ctl.freeze("alice", LONG_LEASE_MS) == "OK"
        with Raw(cl.imap_addr("node-a")) as imap:
            t0 = time.monotonic()
            _, tagged = imap.cmd(f'LOGIN alice "{PASSWORD}"')
            took = time.monotonic() - t0
            assert tagged.startswith("NO [UNAVAILABLE]"), tagged
            assert FREEZE_TIMEOUT - 0.3 <= took <= FREEZE_TIMEOUT + SLACK, took


def test_pop3_logon_times_out_in_use(make_cluster):
    cl = one_node(make_cluster)
    with control(cl) as ctl:
        assert ctl.freeze("alice", LONG_LEASE_MS) == "OK"
        with Pop3(cl.pop3_addr("node-a")) as p:
            p.ok("USER alice")
            t0 = time.monotonic()
            reply = p.cmd(f"PASS {PASSWORD}")
            took = time.monotonic() - t0
            assert reply.startswith("-ERR [IN-USE]"), reply
            assert FREEZE_TIMEOUT - 0.3 <= took <= FREEZE_TIMEOUT + SLACK, took
        # released: the next logon is served
        assert ctl.release_stay("alice") == "OK"
        with Pop3(cl.pop3_addr("node-a")) as p:
            assert p.login("alice").startswith("+OK")


def test_lease_expires_by_itself(make_cluster):
    cl = one_node(make_cluster)
    with control(cl) as ctl:
        assert ctl.freeze("alice", 800) == "OK"
        with start_rcpt(cl, "alice") as c:
            t0 = time.monotonic()
            r = c.reply()
            took = time.monotonic() - t0
            assert r.code == 250, f"after the lease expired: expected 250, got {r!r}"
            assert took < FREEZE_TIMEOUT, f"served only after {took:.2f} s"
        assert ctl.status("alice") == "ACTIVE"
    cl.wait_log("node-a", r"freeze: user=alice: lease expired, unfrozen", "the lease's end")


def test_other_users_are_not_held_up(make_cluster):
    cl = one_node(make_cluster)
    with control(cl) as ctl:
        assert ctl.freeze("alice", LONG_LEASE_MS) == "OK"
        with start_rcpt(cl, "alice") as parked, LmtpConn(cl.lmtp_addr("node-a")) as other:
            other.lhlo()
            times = []
            for i in range(20):
                t0 = time.monotonic()
                _, final = other.deliver(SENDER, ["bob@example.org"],
                                         make_message(unique_subject(f"bob {i}")))
                times.append(time.monotonic() - t0)
                assert [r.code for r in final] == [250], final
            with Raw(cl.imap_addr("node-a")) as imap:
                imap.ok(f'LOGIN bob "{PASSWORD}"')
            assert silent(parked, 0), "alice's RCPT was answered while she was frozen"
            assert ctl.release_stay("alice") == "OK"
            assert parked.reply().code == 250
    print(f"\nbob's deliveries while alice frozen: median {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms")


def test_release_moved_relays_parked_delivery(make_cluster):
    cl = make_cluster(users={"alice": "node-a", "bob": "node-b"}, names=("node-a", "node-b"),
                      **SETTINGS)
    subject = unique_subject("moved")
    msg = make_message(subject)
    with control(cl, "node-a") as ctl:
        assert ctl.freeze("alice", LONG_LEASE_MS) == "OK"
        with start_rcpt(cl, "alice", "node-a") as c:
            assert silent(c, 0.3)
            # the switch a mover makes: the directory names the new home
            with sqlite3.connect(cl.directory, timeout=10) as db:
                db.execute("UPDATE users SET home = 'node-b', epoch = epoch + 1 "
                           "WHERE name = 'alice'")
            cl.homes["alice"] = "node-b"
            host, port = cl.cluster_addr("node-b")
            assert ctl.release_moved("alice", "node-b", f"{host}:{port}") == "OK"
            r = c.reply()
            assert r.code == 250, f"RCPT after RELEASE moved: expected 250, got {r!r}"
            final = finish_data(c, msg)
            assert final.code == 250, f"relayed DATA: expected 250, got {final!r}"
    uid, _, raw = cl.find("alice", subject)
    assert raw.endswith(msg)
    assert re.match(rf"250 2\.0\.0 <alice@example\.org> {uid}\b", final.lines[-1]), final


def timed_deliveries(cl, users, count):
    times = []
    with LmtpConn(cl.lmtp_addr("node-a")) as c:
        c.lhlo()
        for i in range(count):
            user = users[i % len(users)]
            t0 = time.monotonic()
            _, final = c.deliver(SENDER, [f"{user}@example.org"],
                                 make_message(unique_subject(f"load {i}")))
            times.append(time.monotonic() - t0)
            assert [r.code for r in final] == [250], f"delivery {i} to {user}: {final!r}"
    return times


def timed_logins(cl, users, count):
    times = []
    for i in range(count):
        user = users[i % len(users)]
        with Raw(cl.imap_addr("node-a")) as imap:
            t0 = time.monotonic()
            _, tagged = imap.cmd(f'LOGIN {user} "{PASSWORD}"')
            times.append(time.monotonic() - t0)
            assert tagged.startswith("OK"), f"login {i} of {user}: {tagged!r}"
    return times


def ms(xs):
    return f"median {statistics.median(xs) * 1000:.2f} ms, max {max(xs) * 1000:.2f} ms"


def test_lock_leak_fault(make_cluster, monkeypatch):
    """TERN_FAULT_LOCK_LEAK=dave: dave's first delivery leaks his freeze
    entry lock for good. dave's requests end with temporary errors within
    move_freeze_timeout, the watchdog names the lock and where it was
    taken, and everybody else is served as before."""
    monkeypatch.setenv("TERN_FAULT_LOCK_LEAK", "dave")
    others = ["u1", "u2", "u3", "u4", "u5"]
    cl = make_cluster(users={u: "node-a" for u in ["dave"] + others}, names=("node-a",),
                      **SETTINGS)
    before_d = timed_deliveries(cl, others, 200)
    before_l = timed_logins(cl, others, 50)

    with start_rcpt(cl, "dave") as c:
        t0 = time.monotonic()
        r = c.reply()
        took_rcpt = time.monotonic() - t0
        assert r.code == 451 and r.enhanced() == "4.2.0", f"dave's RCPT: {r!r}"
        assert took_rcpt <= FREEZE_TIMEOUT + SLACK, took_rcpt
    cl.wait_log("node-a", r"watchdog: lock 'freeze: dave' held for \d+ ms, taken at "
                r"\S*src/server/freeze\.c:\d+", "the leaked lock")
    with Raw(cl.imap_addr("node-a")) as imap:
        t0 = time.monotonic()
        _, tagged = imap.cmd(f'LOGIN dave "{PASSWORD}"')
        took_login = time.monotonic() - t0
        assert tagged.startswith("NO [UNAVAILABLE]"), tagged
        assert took_login <= FREEZE_TIMEOUT + SLACK, took_login
    cl.wait_log("node-a", r"watchdog: (lmtp rcpt|imap login) for dave parked \d+ ms: its freeze "
                r"entry lock is held", "dave's parked request")
    with control(cl) as ctl:
        assert ctl.status("dave").startswith("NO "), "STATUS of a leaked entry must not wait"
        assert ctl.status("u1") == "ACTIVE"

    during_d = timed_deliveries(cl, others, 200)
    during_l = timed_logins(cl, others, 50)
    print(f"\nlock leak: dave's RCPT 451 after {took_rcpt * 1000:.0f} ms, LOGIN NO after "
          f"{took_login * 1000:.0f} ms\n"
          f"200 deliveries before: {ms(before_d)}; while leaked: {ms(during_d)}\n"
          f"50 logins before: {ms(before_l)}; while leaked: {ms(during_l)}")
