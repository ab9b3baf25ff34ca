"""CATENATE (RFC 4469) from a hostile client: an APPEND whose 64 URL parts
alternate between two large (15 MiB) stored messages (so no part can reuse the
message the one before read) must not hold the loop thread for the whole
command. Another session on the same loop thread (worker_threads = 1)
keeps one NOOP in flight while the APPEND runs; every NOOP must come back
well before a real stall would let it (the bound is generous: the unsliced
APPEND held the thread for whole seconds, see the measurements in the
report of issue 11), and when the parts need whole messages (a MIME part
number) the other session must get answers while the APPEND is still
running, not only after it.

The server reads only what a section needs where it can: a HEADER part of a
big message does not read its body, and a whole-message part over the size
limit is refused with TOOBIG before it is read."""

import os
import re
import select
import time

import pytest

from imap_helpers import Raw, imap_node

BIG = 15 * 1024 * 1024        # bytes of each large message's second part
# under ASan (TERN_SANITIZED=1) everything runs several times slower
SCALE = 4.0 if os.environ.get("TERN_SANITIZED", "0") not in ("", "0") else 1.0
STALL_BOUND = 0.5 * SCALE     # seconds: far above a slice, far below a stall
DEADLINE = 120.0
B = "hostile-boundary"


def big_message(i):
    line = (b"%d" % i) * 75 + b"\r\n"
    body = line * (BIG // len(line))
    bnd = B.encode()
    return (b"From: a@example.org\r\nSubject: big %d\r\nMIME-Version: 1.0\r\n" % i
            + b"Content-Type: multipart/mixed; boundary=\"" + bnd + b"\"\r\n\r\n"
            + b"--" + bnd + b"\r\nContent-Type: text/plain\r\n\r\nsmall part %d\r\n" % i
            + b"--" + bnd + b"\r\nContent-Type: text/plain\r\n\r\n"
            + body + b"\r\n--" + bnd + b"--\r\n")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """One loop thread, two ~15 MiB messages in Drafts (UIDVALIDITY, UIDs)."""
    import ternlib
    n = ternlib.Ternd(str(tmp_path_factory.mktemp("catenate-hostile")),
                      {"imap_listen": None, "worker_threads": "1",
                       "max_message_size": "20M", "max_literal_size": "16M",
                       "auth_failure_delay": "50ms"})
    from ternlib import free_port
    n.settings["imap_listen"] = f"127.0.0.1:{free_port()}"
    n.start()
    n.add_user("alice")
    c = Raw(n, timeout=DEADLINE).login()
    uids = []
    for i in (1, 2):
        _, r = c.cmd_literal("APPEND Drafts", big_message(i), plus=True)
        m = re.match(r"OK \[APPENDUID (\d+) (\d+)\]", r)
        assert m, r
        uids.append(int(m.group(2)))
    c.close()
    yield n, int(m.group(1)), uids
    problems = n.teardown_problems()
    assert not problems, problems


def urls(v, uids, section, count=64):
    return " ".join(f"URL \"/Drafts;UIDVALIDITY={v}/;UID={uids[i % 2]}/;SECTION={section}\""
                    for i in range(count))


def race(node, command):
    """Sends command on session A while session B keeps one NOOP in flight.
    Returns (A's tagged reply, B's NOOP round trips, how many of them were
    answered before A's reply)."""
    a = Raw(node, timeout=DEADLINE).login()
    b = Raw(node, timeout=DEADLINE).login()
    try:
        a.send(b"A1 " + command.encode() + b"\r\n")
        rtts, before = [], 0
        reply = None
        deadline = time.monotonic() + DEADLINE
        n = 0
        while reply is None:
            assert time.monotonic() < deadline, "APPEND not answered in time"
            n += 1
            t0 = time.monotonic()
            b.send(b"N%d NOOP\r\n" % n)
            b.wait(f"N{n}")
            rtts.append(time.monotonic() - t0)
            # A's reply, if it is there by now
            while reply is None:
                r, _, _ = select.select([a.sock], [], [], 0)
                if not r and b"\r\n" not in a.buf:
                    break
                line = a.response()
                if line.startswith(b"A1 "):
                    reply = line[3:].decode()
            if reply is None:
                before += 1
        return reply, rtts, before
    finally:
        a.close()
        b.close()


def test_header_urls_do_not_stall_other_sessions(node):
    n, v, uids = node
    t0 = time.monotonic()
    reply, rtts, _ = race(n, f"APPEND INBOX CATENATE ({urls(v, uids, 'HEADER')})")
    took = time.monotonic() - t0
    assert reply.startswith("OK [APPENDUID"), reply
    print(f"HEADER x64: APPEND {took:.3f} s, worst NOOP {max(rtts):.3f} s, {len(rtts)} NOOPs")
    assert max(rtts) < STALL_BOUND, (max(rtts), rtts)


def test_part_urls_let_other_sessions_run(node):
    """Each part needs its whole 15 MiB message: the command is long, and
    the other session is answered during it, not after."""
    n, v, uids = node
    t0 = time.monotonic()
    reply, rtts, before = race(n, f"APPEND INBOX CATENATE ({urls(v, uids, '1', 32)})")
    took = time.monotonic() - t0
    assert reply.startswith("OK [APPENDUID"), reply
    print(f"part 1 x32: APPEND {took:.3f} s, worst NOOP {max(rtts):.3f} s, "
          f"{len(rtts)} NOOPs, {before} before the APPEND's reply")
    assert max(rtts) < STALL_BOUND, (max(rtts), rtts)


def test_multiappend_of_catenates_does_not_stall(node):
    n, v, uids = node
    msgs = " ".join(f"CATENATE ({urls(v, uids, '1', 4)})" for _ in range(16))
    reply, rtts, before = race(n, f"APPEND INBOX {msgs}")
    assert reply.startswith("OK [APPENDUID"), reply
    assert max(rtts) < STALL_BOUND, (max(rtts), rtts)


def test_whole_message_over_the_limit_is_refused_unread(node):
    """Two whole 15 MiB messages make more than the 20M limit: TOOBIG, and
    the other session is not held up meanwhile."""
    n, v, uids = node
    whole = " ".join(f"URL \"/Drafts;UIDVALIDITY={v}/;UID={uids[i % 2]}\"" for i in range(64))
    reply, rtts, _ = race(n, f"APPEND INBOX CATENATE ({whole})")
    assert reply.startswith("NO [TOOBIG]"), reply
    assert max(rtts) < STALL_BOUND, (max(rtts), rtts)


def literal(resp):
    """The one literal of a FETCH response."""
    m = re.search(rb"\{(\d+)\}\r\n", resp)
    return resp[m.end():m.end() + int(m.group(1))]


def test_section_results_are_right(node):
    """What the sliced reads give is what FETCH gives."""
    n, v, uids = node
    c = Raw(n, timeout=DEADLINE).login()
    try:
        c.ok("SELECT Drafts")
        want = b""
        for uid, sec in ((uids[0], "HEADER"), (uids[1], "1"), (uids[0], "1.MIME"),
                         (uids[1], "HEADER.FIELDS (Subject)"), (uids[0], "TEXT")):
            fetched = [r for r in c.ok(f"UID FETCH {uid} BODY.PEEK[{sec}]<0.300>")
                       if b" FETCH " in r]
            want += literal(fetched[0])
        parts = " ".join(
            f"URL \"/Drafts;UIDVALIDITY={v}/;UID={uid}/;SECTION={sec.replace(' ', '%20')}"
            f"/;PARTIAL=0.300\""
            for uid, sec in ((uids[0], "HEADER"), (uids[1], "1"), (uids[0], "1.MIME"),
                             (uids[1], "HEADER.FIELDS (Subject)"), (uids[0], "TEXT")))
        _, r = c.cmd(f"APPEND Drafts CATENATE ({parts})")
        m = re.match(r"OK \[APPENDUID \d+ (\d+)\]", r)
        assert m, r
        got = [x for x in c.ok(f"UID FETCH {m.group(1)} BODY.PEEK[]") if b" FETCH " in x]
        assert literal(got[0]) == want
    finally:
        c.close()


def test_hang_up_in_the_middle(node):
    """A client that leaves while its parts are being read leaves nothing
    running: the next session is answered, nothing was stored, and the
    server stops cleanly at teardown (no leak, no error in the log)."""
    n, v, uids = node
    c = Raw(n, timeout=DEADLINE).login()
    before = c.ok("STATUS INBOX (MESSAGES)")
    c.close()
    a = Raw(n, timeout=DEADLINE).login()
    a.send(f"A1 APPEND INBOX CATENATE ({urls(v, uids, '1', 64)})\r\n".encode())
    a.close()
    c = Raw(n, timeout=DEADLINE).login()
    try:
        # the reads stop at the hang-up: nothing is stored, then or later
        # (an APPEND that ran in one go was stored before this answer)
        c.ok("NOOP")
        assert c.ok("STATUS INBOX (MESSAGES)") == before
    finally:
        c.close()


def test_source_expunged_meanwhile(node):
    """The source of a part is expunged while the APPEND reads it: BADURL,
    nothing stored, the connection goes on."""
    n, v, uids = node
    a = Raw(n, timeout=DEADLINE).login()
    b = Raw(n, timeout=DEADLINE).login()
    try:
        _, r = b.cmd_literal("APPEND Drafts", big_message(3), plus=True)
        m = re.match(r"OK \[APPENDUID (\d+) (\d+)\]", r)
        assert m, r
        uid3 = int(m.group(2))
        before = a.ok("STATUS INBOX (MESSAGES)")
        # parts of the other two first (each a whole-message read), then the
        # doomed one: the EXPUNGE gets in between the pieces
        parts = urls(v, uids, "1", 16) + f" URL \"/Drafts;UIDVALIDITY={v}/;UID={uid3}/;SECTION=1\""
        a.send(f"A1 APPEND INBOX CATENATE ({parts})\r\n".encode())
        b.ok("SELECT Drafts")
        b.ok(f"UID STORE {uid3} +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        _, r = a.wait("A1")
        assert r.startswith("NO [BADURL /Drafts;UIDVALIDITY="), r
        assert a.ok("STATUS INBOX (MESSAGES)") == before
        a.ok("NOOP")
    finally:
        a.close()
        b.close()


SMALL = {
    "multipart": (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
                  b"Content-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n--xx\r\n"
                  b"Content-Type: text/plain\r\n\r\none\r\n--xx\r\nContent-Type: text/plain\r\n\r\n"
                  b"two two\r\n--xx--\r\n"),
    "header only": b"From: a@example.org\r\nSubject: no body at all\r\n",
    "no header": b"\r\njust a body\r\n",
    "bare LF": b"From: a@example.org\nSubject: lf\n\nbody with LF ends\n",
}


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_sections_of_small_messages_are_what_fetch_returns(node, kind):
    """Every kind of section the sliced reader handles its own way (the
    whole message, its range, the header alone, the text's range, a part),
    with and without PARTIAL (also past the end), gives exactly the bytes
    FETCH returns for it."""
    n, _, _ = node
    c = Raw(n, timeout=DEADLINE).login()
    try:
        _, r = c.cmd_literal("APPEND Drafts", SMALL[kind], plus=True)
        m = re.match(r"OK \[APPENDUID (\d+) (\d+)\]", r)
        assert m, r
        v, uid = int(m.group(1)), int(m.group(2))
        c.ok("SELECT Drafts")
        for sec in ("", "HEADER", "HEADER.FIELDS (Subject)", "HEADER.FIELDS.NOT (Subject)",
                    "TEXT", "1", "1.MIME", "2"):
            for partial in ("", "0.10", "5.20", "1000.5", "3"):
                # ";PARTIAL=3" is from offset 3 to the end
                fetch_partial = (f"<{partial}>" if "." in partial else
                                 f"<{partial}.1000000>" if partial else "")
                fetched = [x for x in c.ok(f"UID FETCH {uid} BODY.PEEK[{sec}]{fetch_partial}")
                           if b" FETCH " in x]
                want = literal(fetched[0]) if re.search(rb"\{\d+\}\r\n", fetched[0]) else None
                url = f"/Drafts;UIDVALIDITY={v}/;UID={uid}"
                if sec:
                    url += f"/;SECTION={sec.replace(' ', '%20')}"
                if partial:
                    url += f"/;PARTIAL={partial}"
                _, r = c.cmd(f"APPEND Drafts CATENATE (TEXT {{1+}}\r\n< URL \"{url}\" "
                             f"TEXT {{1+}}\r\n>)")
                if not want:
                    # nothing to send (an empty section, or past its end):
                    # the message is just the two literals, or no such part
                    assert r.startswith("OK") or r.startswith("NO [BADURL"), (kind, sec, partial, r)
                    if not r.startswith("OK"):
                        continue
                    want = b""
                got = re.match(r"OK \[APPENDUID \d+ (\d+)\]", r)
                assert got, (kind, sec, partial, r)
                stored = [x for x in c.ok(f"UID FETCH {got.group(1)} BODY.PEEK[]")
                          if b" FETCH " in x]
                expect = (b"<" + want + b">").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                assert literal(stored[0]) == expect, (kind, sec, partial)
    finally:
        c.close()
