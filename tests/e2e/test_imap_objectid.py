"""OBJECTID (RFC 8474) end to end: every mailbox has a MAILBOXID, sent by
SELECT/EXAMINE as "* OK [MAILBOXID (id)]", by STATUS (MAILBOXID) and by
LIST-STATUS, kept by RENAME and by a restart, never given to another
mailbox (not even one made again under the same name); every message has
an EMAILID, the same for its COPY/MOVE copies, new for another APPEND of the
same bytes; THREADID is NIL (RFC 8474 §5.2: Tern does not compute threads).
The RFC's own examples (§4.1-§5.2) are replayed with Tern's ids in place of
the RFC's. Bad requests get BAD and the session goes on.

Not here: CREATE's "OK [MAILBOXID (...)]" (RFC 8474 §4.1) belongs to
cmd-mailbox.c; SEARCH EMAILID/THREADID to the SEARCH work."""

import re
import sqlite3

import pytest

from cluster_helpers import cluster_factory
from imap_helpers import Raw, capabilities, deliver, fetch_dict, imap_node
from ternlib import wait_for

OBJECTID = rb"[A-Za-z0-9_-]{1,255}"     # RFC 8474 §7: objectid = 1*255(ALPHA / DIGIT / "_" / "-")

# RFC 8474 §5.1's example appends a message of 733 octets; any message does.
MSG = (b"From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
       b"Subject: afternoon meeting\r\n"
       b"To: mooch@owatagu.siam.edu.example\r\n"
       b"Message-Id: <B27397-0100000@Blurdybloop.example>\r\n"
       b"\r\n"
       b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n")


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def session(node):
    return Raw(node).login()


def append(c, folder, msg=MSG, date='"20-Mar-2018 03:07:37 +1100"'):
    _, t = c.cmd_literal(f"APPEND {folder} {date}", msg)
    assert t.startswith("OK"), t
    return t


def mailboxid_of_select(untagged):
    """The id of the one "* OK [MAILBOXID (id)] ..." among untagged."""
    ids = [m.group(1) for m in (re.fullmatch(rb"\* OK \[MAILBOXID \((" + OBJECTID + rb")\)\].*", r)
                               for r in untagged) if m]
    assert len(ids) == 1, untagged
    return ids[0]


def status_mailboxid(c, name):
    """STATUS name (MAILBOXID): the id, checking the exact response form."""
    untagged = c.ok(f"STATUS {name} (MAILBOXID)")
    assert len(untagged) == 1, untagged
    m = re.fullmatch(rb"\* STATUS (\S+) \(MAILBOXID \((" + OBJECTID + rb")\)\)", untagged[0])
    assert m, untagged
    return m.group(2)


def emailid(c, seq):
    untagged = c.ok(f"FETCH {seq} (EMAILID)")
    assert len(untagged) == 1, untagged
    m = re.fullmatch(rb"\* %d FETCH \(EMAILID \((" % seq + OBJECTID + rb")\)\)", untagged[0])
    assert m, untagged
    return m.group(1)


def test_objectid_capability_advertised(node):
    with session(node) as c:
        assert "OBJECTID" in capabilities(c.ok("CAPABILITY"))


def test_rfc8474_create_example(node):
    """RFC 8474 §4.1's example: CREATE answers OK [MAILBOXID (id)], the id
    STATUS gives afterwards; a second CREATE of foo is NO. (The response
    code is written by cmd-mailbox.c, with store_folder_create_id(): this
    fails until it is.)"""
    with session(node) as c:
        ids = []
        for name in ("foo", "bar"):
            _, t = c.cmd(f"create {name}")
            m = re.fullmatch(r"OK \[MAILBOXID \(([A-Za-z0-9_-]{1,255})\)\] .*", t)
            assert m, t
            assert status_mailboxid(c, name) == m.group(1).encode()
            ids.append(m.group(1))
        assert ids[0] != ids[1]
        _, t = c.cmd("create foo")
        assert t.startswith("NO"), t


def test_rfc8474_status_and_rename_example(node):
    """RFC 8474 §4.3's example: STATUS (MAILBOXID), RENAME keeps it."""
    with session(node) as c:
        c.ok("CREATE foo")
        c.ok("CREATE bar")
        _, t = c.cmd("CREATE foo")
        assert t.startswith("NO"), t
        foo = status_mailboxid(c, "foo")
        bar = status_mailboxid(c, "bar")
        assert foo != bar
        # the item name is case-insensitive (the RFC's example writes it in lower case)
        assert c.ok("status foo (mailboxid)") == [b"* STATUS foo (MAILBOXID (%s))" % foo]
        c.ok("rename foo renamed")
        assert c.ok("status renamed (mailboxid)") == [b"* STATUS renamed (MAILBOXID (%s))" % foo]
        assert status_mailboxid(c, "bar") == bar
        # a mailbox made again under the old name is another mailbox
        c.ok("CREATE foo")
        again = status_mailboxid(c, "foo")
        assert again not in (foo, bar)
        # and one deleted and made again, too (RFC 8474 §4: never reused)
        c.ok("DELETE foo")
        c.ok("CREATE foo")
        assert status_mailboxid(c, "foo") not in (foo, bar, again)
        # beside other items, in the order asked
        untagged = c.ok("STATUS bar (MESSAGES MAILBOXID UIDNEXT)")
        assert untagged == [b"* STATUS bar (MESSAGES 0 MAILBOXID (%s) UIDNEXT 1)" % bar]


def test_rfc8474_select_example(node):
    """RFC 8474 §4.2: SELECT and EXAMINE send * OK [MAILBOXID (id)], the same
    id STATUS gives, and each mailbox its own."""
    with session(node) as c:
        c.ok("CREATE foo")
        foo = status_mailboxid(c, "foo")
        assert mailboxid_of_select(c.ok('select "foo"')) == foo
        assert mailboxid_of_select(c.ok('EXAMINE "foo"')) == foo
        inbox = mailboxid_of_select(c.ok("SELECT INBOX"))
        assert inbox != foo
        assert status_mailboxid(c, "INBOX") == inbox
        # the exact line
        assert b"* OK [MAILBOXID (%s)] Ok" % inbox in c.ok("SELECT INBOX")


def test_mailboxids_distinct_and_survive_restart(node):
    with session(node) as c:
        c.ok("CREATE a/b/c")
        names = ["INBOX", "Sent", "Drafts", "Trash", "Junk", "a", "a/b", "a/b/c"]
        ids = {n: status_mailboxid(c, n) for n in names}
        assert len(set(ids.values())) == len(names), ids
        # renaming a parent keeps its children's ids too
        c.ok("RENAME a z")
        assert status_mailboxid(c, "z") == ids["a"]
        assert status_mailboxid(c, "z/b/c") == ids["a/b/c"]
    assert node.terminate() == 0
    node.start()
    with session(node) as c:
        assert status_mailboxid(c, "INBOX") == ids["INBOX"]
        assert status_mailboxid(c, "z/b") == ids["a/b"]


def test_rename_inbox_keeps_inbox_id(node):
    """RENAME INBOX (RFC 3501 §6.3.5) makes a new mailbox for INBOX's
    messages: INBOX keeps its MAILBOXID, the new one gets its own, and the
    messages keep their EMAILIDs."""
    with session(node) as c:
        inbox = status_mailboxid(c, "INBOX")
        append(c, "INBOX")
        c.select("INBOX")
        e = emailid(c, 1)
        c.ok("UNSELECT")
        c.ok("RENAME INBOX Old")
        assert status_mailboxid(c, "INBOX") == inbox
        assert status_mailboxid(c, "Old") != inbox
        c.select("Old")
        assert emailid(c, 1) == e


def test_list_status_mailboxid(node):
    """RFC 5819 LIST-STATUS carries the MAILBOXID item as STATUS does."""
    with session(node) as c:
        c.ok("CREATE foo")
        foo = status_mailboxid(c, "foo")
        untagged = c.ok('LIST "" "foo" RETURN (STATUS (MAILBOXID MESSAGES))')
        assert untagged[0].startswith(b'* LIST (') and untagged[0].endswith(b' "/" foo'), untagged
        assert untagged[1:] == [b"* STATUS foo (MAILBOXID (%s) MESSAGES 0)" % foo]


def test_rfc8474_emailid_threadid_example(node):
    """RFC 8474 §5.1/§5.2's example: FETCH (EMAILID), (EMAILID THREADID),
    and the same EMAILID on the COPY in foo; THREADID is NIL here."""
    with session(node) as c:
        c.ok("CREATE foo")
        t = append(c, "inbox")
        assert re.fullmatch(r"OK \[APPENDUID \d+ 1\] .*", t), t
        c.select("INBOX")
        e = emailid(c, 1)
        assert c.ok("fetch 1 (emailid)") == [b"* 1 FETCH (EMAILID (%s))" % e]
        assert c.ok("fetch 1 (emailid threadid)") == [b"* 1 FETCH (EMAILID (%s) THREADID NIL)" % e]
        _, t = c.cmd("copy 1 foo")
        assert re.fullmatch(r"OK \[COPYUID \d+ 1 1\] .*", t), t
        c.ok('select "foo"')
        assert c.ok("fetch 1 (emailid threadid)") == [b"* 1 FETCH (EMAILID (%s) THREADID NIL)" % e]
        # UID FETCH adds UID, as for any item
        _, d = fetch_dict(c.ok("UID FETCH 1 (EMAILID)")[0])
        assert d["EMAILID"] == [e.decode()] and d["UID"] == "1"


def test_emailid_move_append_delivery(node):
    """MOVE keeps the EMAILID; APPENDing the same bytes again is another
    message with another EMAILID; delivered messages get one each."""
    deliver(node)
    deliver(node)
    with session(node) as c:
        c.ok("CREATE Archive")
        append(c, "INBOX")
        append(c, "INBOX")
        c.select("INBOX")
        ids = [emailid(c, n) for n in (1, 2, 3, 4)]
        assert len(set(ids)) == 4, ids
        c.ok("MOVE 3 Archive")
        c.select("Archive")
        assert emailid(c, 1) == ids[2]
        # a copy of the copy still has it
        c.ok("COPY 1 INBOX")
        c.select("INBOX")
        assert emailid(c, 4) == ids[2]
        # several messages, with other items, in one FETCH
        untagged = c.ok("FETCH 1:* (UID EMAILID FLAGS)")
        got = {fetch_dict(r)[0]: fetch_dict(r)[1] for r in untagged}
        assert [got[n]["EMAILID"][0].encode() for n in (1, 2, 3, 4)] == \
            [ids[0], ids[1], ids[3], ids[2]]


def test_objectid_bad_requests_session_survives(node):
    with session(node) as c:
        _, t = c.cmd("STATUS INBOX (MAILBOXID")
        assert t.startswith("BAD"), t
        _, t = c.cmd("STATUS INBOX (MAILBOXIDS)")
        assert t.startswith("BAD"), t
        c.select("INBOX")
        append(c, "INBOX")
        for bad in ("FETCH 1 (EMAILID[])", "FETCH 1 EMAILID.PEEK", "FETCH 1 (THREADID EMAIL)"):
            _, t = c.cmd(bad)
            assert t.startswith("BAD"), (bad, t)
        assert len(emailid(c, 1)) > 0


def test_ids_given_to_a_store_from_before_objectid(node):
    """A store written before OBJECTID (schema 4: no id columns) gets ids
    when the server opens it: every mailbox a distinct MAILBOXID, every
    message an EMAILID."""
    deliver(node)
    with session(node) as c:
        c.ok("CREATE foo")
        append(c, "foo")
    assert node.terminate() == 0
    db = sqlite3.connect(node.mail_db("alice"))
    db.executescript("DROP INDEX folders_mailboxid;"
                     "ALTER TABLE folders DROP COLUMN mailboxid;"
                     "ALTER TABLE messages DROP COLUMN emailid;"
                     "ALTER TABLE messages DROP COLUMN save_date;"
                     "UPDATE meta SET value = 4 WHERE key = 'schema_version';")
    db.close()
    node.start()
    with session(node) as c:
        ids = [status_mailboxid(c, n) for n in ("INBOX", "foo", "Sent", "Trash")]
        assert len(set(ids)) == 4
        c.select("INBOX")
        a = emailid(c, 1)
        c.select("foo")
        b = emailid(c, 1)
        assert a != b



@pytest.fixture
def make_cluster(tmp_path):
    yield from cluster_factory(tmp_path)


def ids_seen(addr):
    """{mailbox: (MAILBOXID, sorted "uid EMAILID SAVEDATE")} through addr."""
    with Raw(addr).login() as c:
        out = {}
        for name in ("INBOX", "Archive"):
            box = status_mailboxid(c, name)
            c.ok(f"EXAMINE {name}")
            msgs = []
            for r in c.ok("FETCH 1:* (UID EMAILID SAVEDATE)"):
                d = fetch_dict(r)[1]
                msgs.append(f"{d['UID']} {d['EMAILID'][0]} {d['SAVEDATE']}")
            out[name] = (box, sorted(msgs))
        return out


def move_phase(cl):
    rows = cl["node-a"].ctl("move", "status", "alice", as_json=True)
    if isinstance(rows, dict):
        rows = next((v for v in rows.values() if isinstance(v, list)), [rows])
    return (rows[-1] if rows else None) or {}


def test_ids_and_save_dates_travel_with_a_move(make_cluster):
    """An online move to another node (issue 10) keeps every MAILBOXID,
    EMAILID and SAVEDATE as they were, seen through either node: those of
    the first copy, and those of what changed while the move waited in
    `ready` (a mailbox created, messages appended, copied and moved), which
    travel in the deltas."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"))
    with Raw(cl.imap_addr("node-a")).login() as c:
        append(c, "INBOX")
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b", "--suspend-when-ready")
    wait_for(lambda: move_phase(cl).get("phase") == "ready", 30, "the move to be ready")
    with Raw(cl.imap_addr("node-a")).login() as c:
        c.ok("CREATE Archive")
        append(c, "INBOX")
        append(c, "INBOX")
        c.select("INBOX")
        c.ok("COPY 1 Archive")
        c.ok("MOVE 2 Archive")
    before = ids_seen(cl.imap_addr("node-a"))
    assert len(before["Archive"][1]) == 2 and len(before["INBOX"][1]) == 2, before
    cl["node-a"].ctl("move", "complete", "alice")
    st = wait_for(lambda: move_phase(cl) if move_phase(cl).get("phase") in
                  ("completed", "failed", "cancelled") else None, 60.0, "the move to finish")
    assert st["phase"] == "completed", st
    cl.homes["alice"] = "node-b"
    for front in ("node-a", "node-b"):
        assert ids_seen(cl.imap_addr(front)) == before, front
