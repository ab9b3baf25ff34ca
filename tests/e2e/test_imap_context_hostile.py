"""Updating SEARCH/SORT contexts (RFC 5267 §4) from a hostile client: the
re-evaluation runs in the session's sync on the loop thread, unsliced, so
what one sync may do and what the contexts may keep must be bounded.

- Text: 16 contexts "FLAGGED BODY zzz" over 64 large (2 MiB) messages cost
  no read while nothing is flagged; flagging them all makes every context
  need every message's text. A count of reads alone (256) still let one
  sync read 512 MiB; the bytes a sync may read are bounded too, and the
  contexts that would need more end with "* NO [NOUPDATE tag]". Another
  session on the same loop thread (worker_threads = 1) keeps one NOOP in
  flight meanwhile; none may wait anywhere near as long as the unbounded
  sync held the thread (seconds), the bound is generous.
  The same holds when 64 such messages arrive in a mailbox with 16 BODY
  contexts.
- Memory: 16 SORT contexts over 32,768 messages keep 16 results with their
  sort keys; past the per-session budget, a new context is refused with
  NOUPDATE (the SORT itself is answered), and a context that an update
  would grow past it ends with NOUPDATE."""

import os
import re
import select
import time

import pytest

import ternlib
from imap_helpers import Raw
from ternlib import free_port

# under ASan (TERN_SANITIZED=1) everything runs several times slower
SCALE = 4.0 if os.environ.get("TERN_SANITIZED", "0") not in ("", "0") else 1.0
STALL_BOUND = 0.5 * SCALE     # seconds: far above a slice, far below a stall
DEADLINE = 120.0


def start_node(tmp_path_factory, name):
    n = ternlib.Ternd(str(tmp_path_factory.mktemp(name)),
                      {"imap_listen": f"127.0.0.1:{free_port()}", "worker_threads": "1",
                       "max_message_size": "20M", "max_literal_size": "16M",
                       "auth_failure_delay": "50ms"})
    n.start()
    n.add_user("alice")
    return n


def double_to(c, count):
    """COPY 1:* INBOX until INBOX has count messages (the copies share the
    first message's stored bytes)."""
    have = 1
    while have < count:
        c.ok("COPY 1:* INBOX", timeout=DEADLINE)
        have *= 2
    c.ok("SELECT INBOX")


def race(node, a, command):
    """Sends command on session a while a fresh session keeps one NOOP in
    flight; returns (a's untagged responses, tagged reply, NOOP round
    trips)."""
    b = Raw(node, timeout=DEADLINE).login()
    try:
        tag = a.tag()
        a.send(f"{tag} {command}\r\n")
        rtts, untagged, reply = [], [], None
        deadline = time.monotonic() + DEADLINE
        n = 0
        while reply is None:
            assert time.monotonic() < deadline, "command not answered in time"
            n += 1
            t0 = time.monotonic()
            b.send(b"N%d NOOP\r\n" % n)
            b.wait(f"N{n}")
            rtts.append(time.monotonic() - t0)
            while reply is None:
                r, _, _ = select.select([a.sock], [], [], 0)
                if not r and b"\r\n" not in a.buf:
                    break
                line = a.response()
                if line.startswith(tag.encode() + b" "):
                    reply = line[len(tag) + 1:].decode()
                else:
                    untagged.append(line)
        return untagged, reply, rtts
    finally:
        b.close()


@pytest.fixture(scope="module")
def text_node(tmp_path_factory):
    n = start_node(tmp_path_factory, "context-text")
    c = Raw(n, timeout=DEADLINE).login()
    line = b"plain words in a large message body without the needle\r\n"
    msg = (b"From: a@example.org\r\nSubject: large\r\n\r\n" +
           line * ((2 << 20) // len(line)))
    _, r = c.cmd_literal("APPEND INBOX", msg, plus=True)
    assert r.startswith("OK"), r
    c.ok("SELECT INBOX")
    double_to(c, 64)
    c.close()
    yield n
    problems = n.teardown_problems()
    assert not problems, problems


def test_text_contexts_bounded_per_sync(text_node):
    a = Raw(text_node, timeout=DEADLINE).login()
    other = Raw(text_node, timeout=DEADLINE).login()
    try:
        a.ok("SELECT INBOX")
        tags = []
        for i in range(16):
            tag = a.tag()
            a.send(f"{tag} UID SEARCH RETURN (UPDATE) FLAGGED BODY zzz\r\n")
            _, t = a.wait(tag)
            assert t.startswith("OK"), t
            tags.append(tag)
        other.ok("SELECT INBOX")
        other.ok("STORE 1:* +FLAGS.SILENT (\\Flagged)")
        untagged, reply, rtts = race(text_node, a, "NOOP")
        assert reply.startswith("OK"), reply
        print(f"16 BODY contexts x 64 x 2 MiB: worst NOOP {max(rtts):.3f} s, {len(rtts)} NOOPs")
        text = b"\n".join(untagged)
        ended = [t for t in tags if f'* NO [NOUPDATE "{t}"]'.encode() in text]
        # none matches: a context that follows the change sends nothing
        assert b"* ESEARCH" not in text, untagged
        assert ended, untagged
        assert max(rtts) < STALL_BOUND, (max(rtts), rtts)
        for t in tags:
            _, r = a.cmd(f'CANCELUPDATE "{t}"')
            assert r.startswith("BAD" if t in ended else "OK"), (t, r)
        # a change within the budget is followed
        tag = a.tag()
        a.send(f"{tag} UID SEARCH RETURN (UPDATE) UNFLAGGED BODY needle\r\n")
        _, t = a.wait(tag)
        assert t.startswith("OK"), t
        other.ok("UID STORE 1 -FLAGS.SILENT (\\Flagged)")
        u = a.ok("NOOP")
        assert [x for x in u if x.startswith(b"* ESEARCH")] == \
            [b'* ESEARCH (TAG "%s") UID ADDTO (0 1)' % tag.encode()], u
    finally:
        a.close()
        other.close()


def test_text_contexts_bounded_for_arrivals(text_node):
    """The same for new mail: 64 large messages arrive (a COPY from
    another session) in a mailbox with 16 BODY contexts."""
    a = Raw(text_node, timeout=DEADLINE).login()
    other = Raw(text_node, timeout=DEADLINE).login()
    try:
        a.ok("CREATE Arrivals")
        a.ok("SELECT Arrivals")
        tags = []
        for i in range(16):
            tag = a.tag()
            a.send(f"{tag} UID SEARCH RETURN (UPDATE) BODY zzz\r\n")
            _, t = a.wait(tag)
            assert t.startswith("OK"), t
            tags.append(tag)
        other.ok("SELECT INBOX")
        other.ok("COPY 1:64 Arrivals")
        untagged, reply, rtts = race(text_node, a, "NOOP")
        assert reply.startswith("OK"), reply
        print(f"16 BODY contexts, 64 x 2 MiB arrive: worst NOOP {max(rtts):.3f} s")
        text = b"\n".join(untagged)
        assert b"* 64 EXISTS" in text, untagged
        assert b"* ESEARCH" not in text, untagged
        assert [t for t in tags if f'* NO [NOUPDATE "{t}"]'.encode() in text], untagged
        assert max(rtts) < STALL_BOUND, (max(rtts), rtts)
    finally:
        a.close()
        other.close()


@pytest.fixture(scope="module")
def many_node(tmp_path_factory):
    n = start_node(tmp_path_factory, "context-many")
    c = Raw(n, timeout=DEADLINE).login()
    _, r = c.cmd_literal("APPEND INBOX",
                         b"From: a@example.org\r\nSubject: small\r\n\r\nhello\r\n", plus=True)
    assert r.startswith("OK"), r
    c.ok("SELECT INBOX")
    double_to(c, 32768)
    c.close()
    yield n
    problems = n.teardown_problems()
    assert not problems, problems


def vm_rss_kb(node):
    with open(f"/proc/{node.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_sort_contexts_memory_is_bounded(many_node):
    a = Raw(many_node, timeout=DEADLINE).login()
    try:
        a.ok("SELECT INBOX")
        before = vm_rss_kb(many_node)
        refused = []
        for i in range(16):
            tag = a.tag()
            a.send(f"{tag} UID SORT RETURN (UPDATE COUNT) (SUBJECT FROM) UTF-8 ALL\r\n")
            u, t = a.wait(tag, DEADLINE)
            assert t.startswith("OK"), t
            assert [x for x in u if x.startswith(b"* ESEARCH") and b"COUNT 32768" in x], u
            if f'* NO [NOUPDATE "{tag}"]'.encode() in b"\n".join(u):
                refused.append(tag)
        grown = vm_rss_kb(many_node) - before
        print(f"16 SORT contexts x 32768: RSS grew {grown / 1024:.1f} MiB, "
              f"{len(refused)} refused")
        assert refused, "no context was refused"
        assert len(refused) < 16, "even the first context was refused"
    finally:
        a.close()


def test_update_past_the_budget_ends_the_context(many_node):
    """SORT (ARRIVAL) FLAGGED contexts start empty and need no read; when
    everything is flagged they would keep 16 x 32768 entries: those that
    would go past the budget end with NOUPDATE, the others report ADDTO."""
    a = Raw(many_node, timeout=DEADLINE).login()
    other = Raw(many_node, timeout=DEADLINE).login()
    try:
        a.ok("SELECT INBOX")
        tags = []
        for i in range(16):
            tag = a.tag()
            a.send(f"{tag} UID SORT RETURN (UPDATE) (ARRIVAL) UTF-8 FLAGGED\r\n")
            u, t = a.wait(tag, DEADLINE)
            assert t.startswith("OK") and b"NOUPDATE" not in b"".join(u), (t, u)
            tags.append(tag)
        other.ok("SELECT INBOX")
        other.ok("STORE 1:* +FLAGS.SILENT (\\Flagged)", timeout=DEADLINE)
        u, reply, rtts = race(many_node, a, "NOOP")
        assert reply.startswith("OK"), reply
        print(f"16 SORT (ARRIVAL) contexts, 32768 flagged: worst NOOP {max(rtts):.3f} s")
        text = b"\n".join(u)
        ended = [t for t in tags if f'* NO [NOUPDATE "{t}"]'.encode() in text]
        added = [t for t in tags if re.search(rb'\* ESEARCH \(TAG "%s"\) UID ADDTO \(1 1:32768\)'
                                              % t.encode(), text)]
        assert ended and added and len(ended) + len(added) == 16, (ended, added)
        assert max(rtts) < STALL_BOUND, (max(rtts), rtts)
    finally:
        a.close()
        other.close()


def test_too_complex_a_program_is_not_followed(many_node):
    """A context of thousands of keys (each changed message is evaluated
    against all of them, 70 s for 16 such contexts when 32,768 messages
    were flagged) is refused at once: "* NO [NOUPDATE tag]"; the search
    itself is answered."""
    a = Raw(many_node, timeout=DEADLINE).login()
    try:
        a.ok("SELECT INBOX")
        for program in ("FLAGGED " * 7000, "OR BODY a BODY b " * 5):
            tag = a.tag()
            a.send(f"{tag} UID SEARCH RETURN (UPDATE COUNT) {program}\r\n")
            u, t = a.wait(tag, DEADLINE)
            assert t.startswith("OK"), t
            assert [x for x in u if x.startswith(b"* ESEARCH")], u
            assert f'* NO [NOUPDATE "{tag}"] Search too complex to follow'.encode() in u, u
        # a program of a few keys is followed
        _, t = a.cmd("UID SEARCH RETURN (UPDATE) FLAGGED UNSEEN NOT DELETED")
        assert t.startswith("OK"), t
    finally:
        a.close()


def test_sync_work_is_bounded(many_node):
    """16 contexts of 60 metadata keys: flagging 32,768 messages would
    cost 16 x 32,768 x 60 key evaluations in one sync; contexts past the
    sync's work budget end with NOUPDATE instead."""
    a = Raw(many_node, timeout=DEADLINE).login()
    other = Raw(many_node, timeout=DEADLINE).login()
    try:
        a.ok("SELECT INBOX")
        other.ok("SELECT INBOX")
        other.ok("STORE 1:* -FLAGS.SILENT (\\Flagged)", timeout=DEADLINE)
        a.ok("NOOP", timeout=DEADLINE)
        tags = []
        for i in range(16):
            tag = a.tag()
            a.send(f"{tag} UID SEARCH RETURN (UPDATE) {'FLAGGED ' * 59}\r\n")
            u, t = a.wait(tag, DEADLINE)
            assert t.startswith("OK") and b"NOUPDATE" not in b"".join(u), (t, u)
            tags.append(tag)
        other.ok("STORE 1:* +FLAGS.SILENT (\\Flagged)", timeout=DEADLINE)
        u, reply, rtts = race(many_node, a, "NOOP")
        assert reply.startswith("OK"), reply
        print(f"16 x 60-key contexts, 32768 flagged: worst NOOP {max(rtts):.3f} s")
        text = b"\n".join(u)
        ended = [t for t in tags if f'* NO [NOUPDATE "{t}"]'.encode() in text]
        assert len(ended) == 16, (ended, [x for x in u if not x.startswith(b"* ") or
                                          b"FETCH" not in x][:20])
        assert max(rtts) < STALL_BOUND, (max(rtts), rtts)
    finally:
        a.close()
        other.close()
