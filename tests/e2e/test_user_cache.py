"""The user cache (src/server/user-cache.h): an LMTP RCPT is answered from
the node's memory of the directory while the directory has not changed,
and a change made with ternctl (another process) is obeyed within one
heartbeat (TERN_NODE_HEARTBEAT_MS, 1 s) plus the directory read: deleting
a user makes RCPT answer 550 5.1.1, adding one (also one that was cached
as unknown) makes it 250, and a limit set on a user without one refuses
RCPT once the user is at it. Each change is awaited by polling RCPT
against a deadline (CHANGE_DEADLINE), never by sleeping; how long it took
is printed (pytest -s) for the record.

That the cache answers at all is checked from ternd's last log line about
it at a clean stop ("user cache: N hits, ...")."""

import os
import re
import time

from ternlib import LmtpConn, make_message, unique_subject

SENDER = "sender@remote.test"
SCALE = 4.0 if os.environ.get("TERN_SANITIZED", "0") not in ("", "0") else 1.0
# One heartbeat (1 s) and the read, with room for a loaded machine.
CHANGE_DEADLINE = 4.0 * SCALE


def rcpt(c, user):
    """A fresh transaction with one recipient; returns its RCPT reply."""
    c.expect("RSET", 250)
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    return c.cmd(f"RCPT TO:<{user}@example.org>")


def await_rcpt(c, user, code, enhanced, what):
    """Polls RCPT until it gets code/enhanced; returns the seconds it took."""
    start = time.monotonic()
    deadline = start + CHANGE_DEADLINE
    while True:
        r = rcpt(c, user)
        if r.code == code and r.enhanced() == enhanced:
            took = time.monotonic() - start
            print(f"{what}: RCPT {user} answered {code} {enhanced} after {took * 1000:.0f} ms")
            return took
        assert r.code in (250, 550, 552), f"{what}: unexpected reply {r!r}"
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: RCPT {user} still answered {r!r} "
                                 f"{CHANGE_DEADLINE:.1f}s after the change")
        time.sleep(0.02)   # poll interval, not a synchronisation


def cache_stats(node):
    """The numbers of the user cache's line at ternd's clean stop."""
    assert node.terminate() == 0
    m = re.search(r"user cache: (\d+) hits, (\d+) misses, (\d+) puts", node.stderr_text())
    assert m, "ternd logs the user cache's figures at a clean stop:\n" + node.stderr_text()
    return tuple(int(x) for x in m.groups())


def test_delete_and_add_are_obeyed_within_a_heartbeat(make_ternd):
    node = make_ternd(users=("alice", "bob"))
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        # alice known, carol unknown: both answers are cached after the first
        for _ in range(5):
            r = rcpt(c, "alice")
            assert r.code == 250, r
            r = rcpt(c, "carol")
            assert (r.code, r.enhanced()) == (550, "5.1.1"), r

        node.ctl("user", "del", "alice")
        await_rcpt(c, "alice", 550, "5.1.1", "user del")
        node.ctl("user", "add", "alice", "--hash", "{PLAIN}x")
        await_rcpt(c, "alice", 250, "2.1.5", "user add")
        # the negative entry goes too (cached again at the new generation)
        for _ in range(3):
            r = rcpt(c, "carol")
            assert (r.code, r.enhanced()) == (550, "5.1.1"), r
        node.ctl("user", "add", "carol", "--hash", "{PLAIN}x")
        await_rcpt(c, "carol", 250, "2.1.5", "user add of a user cached as unknown")

        # and mail flows to both, answered from the cache again
        subject = unique_subject("after")
        c.expect("RSET", 250)
        rcpts, data = c.deliver(SENDER, ["alice@example.org", "carol@example.org",
                                         "bob@example.org"], make_message(subject))
        assert [r.code for r in rcpts] == [250, 250, 250], rcpts
        assert [r.code for r in data] == [250, 250, 250], data
    for user in ("alice", "carol", "bob"):
        assert node.subjects(user) == [subject]
    hits, misses, puts = cache_stats(node)
    assert hits > 0 and puts > 0, (hits, misses, puts)


def test_quota_set_on_a_cached_user_refuses_at_rcpt(make_ternd):
    """alice has no limit, so her RCPT needs no usage read and is answered
    from the cache; a limit below what she stores must refuse her RCPT
    (552 5.2.2) once the change is seen; raising it accepts again."""
    node = make_ternd(users=("alice",))
    big = make_message(unique_subject("big"), body="z" * 30_000 + "\r\n")
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        rcpts, data = c.deliver(SENDER, ["alice@example.org"], big)
        assert [r.code for r in data] == [250], data
        for _ in range(5):
            assert rcpt(c, "alice").code == 250

        node.ctl("user", "quota", "alice", "10K")
        await_rcpt(c, "alice", 552, "5.2.2", "user quota lowered below usage")
        # a limited user's RCPT reads the usage, and the directory with it:
        # raising the limit is obeyed at the next RCPT
        node.ctl("user", "quota", "alice", "1M")
        r = rcpt(c, "alice")
        assert r.code == 250, r
        node.ctl("user", "quota", "alice", "10K")
        r = rcpt(c, "alice")
        assert (r.code, r.enhanced()) == (552, "5.2.2"), r
    assert len(node.messages("alice")) == 1
