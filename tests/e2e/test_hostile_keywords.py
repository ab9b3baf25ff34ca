"""Hostile keyword lists (issue 7, "hostile input costs the attacker, never
another user"): one STORE or APPEND naming 10,000 keywords used to hold the
loop thread for seconds (every step of the keyword path rescanned the list
for each keyword), and every other session on that thread waited.

With worker_threads = 1 every session shares one loop thread, so a NOOP
from a second session measures exactly how long the hostile command held
it. The bound is 100 ms: the issue's target for interactive latency, and
two orders of magnitude below the 3.2 s the STORE took before, while still
far above what the refused command costs now (a few milliseconds, even on
a loaded CI machine).

Limits (src/core/limits.h): 128 keywords on one message, 1000 distinct
keywords in one folder; past them STORE gets NO [LIMIT] (RFC 5530), and a
folder at its limit drops \\* from PERMANENTFLAGS (RFC 3501 §7.1). Data
already over a limit keeps working. Every wait has a deadline."""

import os
import re
import sqlite3
import threading
import time

import pytest

from imap_helpers import Raw, deliver_many, imap_node
from ternlib import make_message

# ASan builds run several times slower; the bound scales, the claim stays.
SCALE = 4.0 if os.environ.get("TERN_SANITIZED", "0") not in ("", "0") else 1.0
NOOP_BOUND = 0.100 * SCALE
HOSTILE_COUNT = 10000
PER_MESSAGE = 128          # TERN_KEYWORDS_PER_MESSAGE_MAX
PER_FOLDER = 1000          # TERN_KEYWORDS_PER_FOLDER_MAX
DEADLINE = 120             # seconds for the hostile command itself (it took 3 s before)


def keyword_list(count, prefix="k"):
    return " ".join(f"{prefix}{i}" for i in range(count))


def node_for(make_ternd):
    # A 10,000-keyword line is about 60 KB; room for it, so that the keyword
    # path is what gets tested and not the line-length limit.
    return imap_node(make_ternd, worker_threads=1, max_line_length="1M")


def proc_cpu_seconds(pid):
    """User + system CPU of the whole ternd process (every thread)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def noop_latencies_while(node, busy, other, send_hostile):
    """Sends the hostile command on busy and, until its tagged reply arrives,
    times one NOOP after another on other (same loop thread). Returns
    (tagged reply, untagged replies, NOOP round trips, seconds until the
    tagged reply, ternd CPU seconds meanwhile)."""
    done = threading.Event()
    result = {}

    def wait_reply(tag):
        try:
            result["reply"] = busy.wait(tag, timeout=DEADLINE)
        except BaseException as exc:     # reported by the main thread
            result["error"] = exc
        finally:
            done.set()

    cpu0 = proc_cpu_seconds(node.proc.pid)
    start = time.monotonic()
    tag = send_hostile()
    waiter = threading.Thread(target=wait_reply, args=(tag,), daemon=True)
    waiter.start()
    latencies = []
    deadline = start + DEADLINE
    # At least one NOOP, and NOOPs for as long as the hostile command runs:
    # whichever of them overlaps it waits for it when it holds the thread.
    while not latencies or not done.is_set():
        assert time.monotonic() < deadline, "the hostile command was not answered"
        t0 = time.monotonic()
        _, tagged = other.cmd("NOOP", timeout=DEADLINE)
        latencies.append(time.monotonic() - t0)
        assert tagged.startswith("OK"), tagged
    waiter.join(DEADLINE)
    elapsed = time.monotonic() - start
    cpu = proc_cpu_seconds(node.proc.pid) - cpu0
    if "error" in result:
        raise result["error"]
    untagged, tagged = result["reply"]
    return tagged, untagged, latencies, elapsed, cpu


def send_tagged(c, line):
    tag = c.tag()
    c.send(tag.encode() + b" " + line + b"\r\n")
    return tag


def flags_of(c, seq):
    """FETCH FLAGS of one message, in the server's order, without \\Recent."""
    d = c.fetch(str(seq), "FLAGS")
    return [str(f) for f in d[seq]["FLAGS"] if str(f) != "\\Recent"]


def flags_lists(untagged):
    """(FLAGS list, PERMANENTFLAGS list) from the last such responses."""
    flags = perm = None
    for r in untagged:
        m = re.match(rb"\* FLAGS \(([^)]*)\)", r)
        if m:
            flags = m.group(1).decode().split()
        m = re.match(rb"\* OK \[PERMANENTFLAGS \(([^)]*)\)\]", r)
        if m:
            perm = m.group(1).decode().split()
    return flags, perm


# ------------------------------------------------------------ the finding

def test_store_of_10000_keywords_does_not_hold_up_other_sessions(make_ternd):
    node = node_for(make_ternd)
    deliver_many(node, 1)
    with Raw(node).login() as a, Raw(node).login() as b:
        a.select()
        line = f"STORE 1 +FLAGS ({keyword_list(HOSTILE_COUNT)})".encode()
        tagged, _, latencies, elapsed, cpu = noop_latencies_while(
            node, a, b, lambda: send_tagged(a, line))
        print(f"STORE of {HOSTILE_COUNT} keywords: answered after {elapsed * 1000:.1f} ms, "
              f"ternd CPU {cpu * 1000:.0f} ms; other session's NOOPs (ms): "
              f"max {max(latencies) * 1000:.1f} over {len(latencies)}")
        assert tagged.startswith("NO [LIMIT]"), tagged
        assert max(latencies) < NOOP_BOUND, (
            f"another session's NOOP waited {max(latencies) * 1000:.0f} ms for the STORE")
        assert flags_of(a, 1) == [], "a refused STORE changes nothing"
        # the same session and the same message still take a normal STORE
        a.ok("STORE 1 +FLAGS ($Label1 work)")
        assert flags_of(a, 1) == ["$Label1", "work"]


def test_append_of_10000_keywords_does_not_hold_up_other_sessions(make_ternd):
    node = node_for(make_ternd)
    deliver_many(node, 1)
    msg = make_message("keyword bomb", to="alice@example.org")
    with Raw(node).login() as a, Raw(node).login() as b:
        a.select()       # the view would learn the new message's keywords
        line = (f"APPEND INBOX ({keyword_list(HOSTILE_COUNT)}) {{{len(msg)}+}}\r\n".encode()
                + msg)
        tagged, _, latencies, elapsed, cpu = noop_latencies_while(
            node, a, b, lambda: send_tagged(a, line))
        print(f"APPEND with {HOSTILE_COUNT} keywords: answered after {elapsed * 1000:.1f} ms, "
              f"ternd CPU {cpu * 1000:.0f} ms; other session's NOOPs (ms): "
              f"max {max(latencies) * 1000:.1f} over {len(latencies)}")
        assert tagged.startswith(("NO", "BAD")), f"APPEND with {HOSTILE_COUNT} keywords: {tagged}"
        assert max(latencies) < NOOP_BOUND, (
            f"another session's NOOP waited {max(latencies) * 1000:.0f} ms for the APPEND")
        assert [int(r.split()[1]) for r in a.ok("NOOP") if r.endswith(b" EXISTS")] == [], \
            "nothing was appended"
        # an APPEND with a normal keyword list is stored with it
        kws = keyword_list(20, "tag")
        _, t = a.cmd_literal(f"APPEND INBOX (\\Seen {kws})", msg)
        assert t.startswith("OK"), t
        a.ok("NOOP")
        assert flags_of(a, 2) == ["\\Seen"] + kws.split()


def test_append_over_the_keyword_limit_gets_no_limit(make_ternd):
    node = node_for(make_ternd)
    msg = make_message("too many keywords", to="alice@example.org")
    with Raw(node).login() as a:
        _, t = a.cmd_literal(f"APPEND INBOX ({keyword_list(PER_MESSAGE + 1)})", msg)
        assert t.startswith("NO [LIMIT]"), t


# ------------------------------------------------------------ semantics kept

def test_normal_keyword_stores_keep_their_meaning(make_ternd):
    """Keywords compare case-insensitively (RFC 3501 §2.3.2): the first
    spelling is kept, in the order given; +FLAGS adds after the existing
    ones, -FLAGS removes in any case; FETCH FLAGS and FLAGS show them."""
    node = node_for(make_ternd)
    deliver_many(node, 2)
    with Raw(node).login() as a:
        a.select()
        untagged = a.ok("STORE 1 +FLAGS (Zeta alpha ALPHA $Work zeta \\Seen)")
        flags, perm = flags_lists(untagged)
        assert flags is not None and {"Zeta", "alpha", "$Work"} <= set(flags), untagged
        assert perm is not None and "\\*" in perm, untagged
        assert flags_of(a, 1) == ["\\Seen", "Zeta", "alpha", "$Work"]
        a.ok("STORE 1 +FLAGS ($WORK beta)")
        assert flags_of(a, 1) == ["\\Seen", "Zeta", "alpha", "$Work", "beta"]
        a.ok("STORE 1 -FLAGS (ZETA BETA)")
        assert flags_of(a, 1) == ["\\Seen", "alpha", "$Work"]
        a.ok("STORE 1 FLAGS (gamma Gamma)")
        assert flags_of(a, 1) == ["gamma"]
        assert a.search("KEYWORD GAMMA") == [1]
        assert a.search("UNKEYWORD gamma") == [2]


def test_keyword_limit_per_message(make_ternd):
    node = node_for(make_ternd)
    deliver_many(node, 1)
    with Raw(node).login() as a:
        a.select()
        # duplicates do not count
        a.ok(f"STORE 1 FLAGS ({keyword_list(PER_MESSAGE)} {keyword_list(PER_MESSAGE).upper()})")
        assert len(flags_of(a, 1)) == PER_MESSAGE
        _, t = a.cmd(f"STORE 1 FLAGS ({keyword_list(PER_MESSAGE + 1)})")
        assert t.startswith("NO [LIMIT]"), t
        # one more on a message that is full
        _, t = a.cmd("STORE 1 +FLAGS (onemore)")
        assert t.startswith("NO [LIMIT]"), t
        assert len(flags_of(a, 1)) == PER_MESSAGE, "a refused STORE changes nothing"
        # what it has already, system flags and removals still go through
        a.ok("STORE 1 +FLAGS (\\Flagged k0 K1)")
        a.ok("STORE 1 -FLAGS (k0)")
        a.ok("STORE 1 +FLAGS (onemore)")
        assert flags_of(a, 1)[:1] == ["\\Flagged"] and flags_of(a, 1)[-1] == "onemore"


def test_keyword_limit_per_folder(make_ternd):
    """1000 distinct keywords fill a folder: PERMANENTFLAGS loses \\*, a STORE
    of a new keyword gets NO [LIMIT], keywords the folder has still work;
    once the keywords are gone a new SELECT offers \\* again."""
    node = node_for(make_ternd)
    per_store = 125
    count = PER_FOLDER // per_store
    deliver_many(node, count + 1)
    with Raw(node).login() as a, Raw(node).login() as b:
        a.select()
        b.select()
        for i in range(count):
            untagged = a.ok(f"STORE {i + 1} +FLAGS ({keyword_list(per_store, f'f{i}x')})")
        flags, perm = flags_lists(untagged)
        assert len(flags) == 5 + PER_FOLDER and "\\*" not in perm, perm[-3:]
        _, t = a.cmd("STORE 1 +FLAGS (brandnew)")
        assert t.startswith("NO [LIMIT]"), t
        # known keywords in another spelling are not new (the message keeps
        # the spelling its STORE gave, as before)
        a.ok(f"STORE {count + 1} +FLAGS (f0x0 F1X1)")
        assert flags_of(a, count + 1) == ["f0x0", "F1X1"]
        # the other session hears of them, and of the limit
        flags, perm = flags_lists(b.ok("NOOP"))
        assert len(flags) == 5 + PER_FOLDER and "\\*" not in perm
    with Raw(node).login() as c:
        flags, perm = flags_lists(c.select())
        assert len(flags) == 5 + PER_FOLDER and "\\*" not in perm
        c.ok("STORE 1:* FLAGS (\\Seen)")
    with Raw(node).login() as c:
        flags, perm = flags_lists(c.select())
        assert "\\*" in perm and len(flags) == 5, (flags, perm)
        c.ok("STORE 1 +FLAGS (brandnew)")


def test_data_already_over_the_limits_keeps_working(make_ternd):
    """A message stored with 10,000 keywords (before there was a limit)
    reads, searches and changes as before, and it only cannot grow. Each
    step on it is linear in its keywords, so none of them holds up another
    session on the loop thread either."""
    node = node_for(make_ternd)
    deliver_many(node, 2)
    node.terminate()
    many = keyword_list(HOSTILE_COUNT, "old")
    db = sqlite3.connect(node.mail_db("alice"), timeout=10)
    with db:
        db.execute("UPDATE messages SET keywords = ? WHERE uid = 1", (many,))
    db.close()
    node.start(new_port=False)
    with Raw(node).login() as a, Raw(node).login() as b:
        worst = {}

        def timed(line):
            tagged, untagged, latencies, _, _ = noop_latencies_while(
                node, a, b, lambda: send_tagged(a, line.encode()))
            worst[line] = max(latencies)
            return tagged, untagged

        tagged, untagged = timed("SELECT INBOX")
        assert tagged.startswith("OK"), tagged
        flags, perm = flags_lists(untagged)
        assert len(flags) == 5 + HOSTILE_COUNT and "\\*" not in perm
        assert flags_of(a, 1) == many.split()
        assert a.search("KEYWORD OLD9999") == [1]
        assert timed("STORE 1 +FLAGS (\\Seen old7)")[0].startswith("OK")
        assert timed("STORE 1 -FLAGS (old0 old1)")[0].startswith("OK")
        assert flags_of(a, 1) == ["\\Seen"] + many.split()[2:]
        assert timed("STORE 1 +FLAGS (brandnew)")[0].startswith("NO [LIMIT]")
        assert timed("STORE 2 +FLAGS (brandnew)")[0].startswith("NO [LIMIT]")
        assert timed("STORE 2 +FLAGS (old5)")[0].startswith("OK")
        assert flags_of(a, 2) == ["old5"]
        print("other session's NOOP, worst (ms): " +
              ", ".join(f"{k}: {v * 1000:.1f}" for k, v in worst.items()))
        assert max(worst.values()) < NOOP_BOUND, worst
