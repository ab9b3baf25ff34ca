"""Cached parses from before the RFC 5322 address parser (store schema v5
and older) are not served: the store marks them stale when it migrates to
v6, and the first read of each message reparses it, so ENVELOPE and SORT
show the new parse (issue 11's addresses: comments inside an address,
groups), and the reparse is written back once."""

import sqlite3

import pytest

from cluster_helpers import cluster_factory
from imap_helpers import Raw, fetch_dict, imap_node
from ternlib import wait_for

# the exact header bytes
MSG = (b"From: <user-from (comment)@ (comment) domain.org>\r\n"
       b"To: empty:;\r\n"
       b"Cc: user2: blah@domain1.org;\r\n"
       b"Subject: cached before\r\n"
       b"\r\n"
       b"body\r\n")
OTHER = b"From: x@x.test\r\nSubject: other\r\n\r\nbody\r\n"

# what a parser that knew no comments or groups might have cached
OLD_ENVELOPE = ('(NIL "cached before" (("zzz (comment)" NIL "zzz" "old.test"))'
                ' (("zzz (comment)" NIL "zzz" "old.test")) (("zzz (comment)" NIL "zzz" "old.test"))'
                ' ((NIL NIL "empty:;" NIL)) ((NIL NIL "user2: blah" "domain1.org;")) NIL NIL NIL)')


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd, pop3=True)


@pytest.fixture
def make_cluster(tmp_path):
    yield from cluster_factory(tmp_path)


def append(c, msg):
    _, t = c.cmd_literal("APPEND INBOX", msg)
    assert t.startswith("OK"), t


def envelope(c, seq):
    _, d = fetch_dict(c.ok(f"FETCH {seq} (ENVELOPE)")[0])
    return d["ENVELOPE"]


def make_old_store(node, new_port=True):
    """The store as an older Tern left it: schema v5, MSG's blob holding an
    old parse."""
    assert node.terminate() == 0
    db = sqlite3.connect(node.mail_db("alice"))
    db.executescript(
        "DROP TABLE IF EXISTS blobs_stale;"
        "UPDATE meta SET value = 5 WHERE key = 'schema_version';")
    db.execute("UPDATE blobs SET envelope = ? WHERE subject = 'cached before'", (OLD_ENVELOPE,))
    db.commit()
    db.close()
    node.start(new_port=new_port)


def cached_envelopes(node):
    db = sqlite3.connect(node.mail_db("alice"))
    try:
        return [r[0] for r in db.execute("SELECT envelope FROM blobs ORDER BY id")]
    finally:
        db.close()


def test_old_cached_envelope_is_reparsed(node):
    with Raw(node).login() as c:
        append(c, MSG)
        append(c, OTHER)
    make_old_store(node)
    assert OLD_ENVELOPE in cached_envelopes(node)
    with Raw(node).login() as c:
        c.ok("SELECT INBOX")
        env = envelope(c, 1)
        assert env[2] == [[None, None, b"user-from", b"domain.org"]], env
        assert env[5] == [[None, None, b"empty", None], [None, None, None, None]], env
        assert env[6] == [[None, None, b"user2", None], [None, None, b"blah", b"domain1.org"],
                          [None, None, None, None]], env
        # the same bytes appended now parse alike
        append(c, MSG)
        assert envelope(c, 3) == env
        # written back by the user's worker after the FETCH (the session
        # itself never writes): the store holds the new parse
        wait_for(lambda: OLD_ENVELOPE not in cached_envelopes(node), 10,
                 "the reparsed ENVELOPE written back")


def test_sort_uses_the_reparse(node):
    """SORT reads the cached ENVELOPE: by the old parse MSG's first From
    mailbox was "zzz" (after "x"), by the new one it is "user-from"."""
    with Raw(node).login() as c:
        append(c, MSG)
        append(c, OTHER)
    make_old_store(node)
    with Raw(node).login() as c:
        c.ok("SELECT INBOX")
        untagged = c.ok("SORT (FROM) UTF-8 ALL")
        assert untagged == [b"* SORT 1 2"], untagged
        untagged = c.ok("SORT (CC) UTF-8 ALL")
        # CC: MSG's first address is the group "user2"; OTHER has none ("")
        assert untagged == [b"* SORT 2 1"], untagged


def test_move_of_a_store_with_stale_parses(make_cluster):
    """A store migrated with stale parses moves to another node (the move
    verifies the copy by checksum); the new home reparses, once."""
    cl = make_cluster(users={"alice": "node-a"}, names=("node-a", "node-b"))
    with Raw(cl.imap_addr("node-a")).login() as c:
        append(c, MSG)
        append(c, OTHER)
    make_old_store(cl["node-a"], new_port=False)
    # the source migrates (marks) when the move opens the store
    cl["node-a"].ctl("move", "start", "alice", "--to", "node-b")

    def done():
        rows = cl["node-a"].ctl("move", "status", "alice", as_json=True)
        if isinstance(rows, dict):
            rows = next((v for v in rows.values() if isinstance(v, list)), [rows])
        st = rows[-1] if rows else None
        return st if st and st.get("phase") in ("completed", "failed", "cancelled") else None
    st = wait_for(done, 60, "the move of alice to finish")
    assert st["phase"] == "completed", st
    cl.homes["alice"] = "node-b"
    assert OLD_ENVELOPE in cached_envelopes(cl["node-b"])
    with Raw(cl.imap_addr("node-b")).login() as c:
        c.ok("SELECT INBOX")
        env = envelope(c, 1)
        assert env[2] == [[None, None, b"user-from", b"domain.org"]], env
        assert c.ok("SORT (FROM) UTF-8 ALL") == [b"* SORT 1 2"]
    wait_for(lambda: OLD_ENVELOPE not in cached_envelopes(cl["node-b"]), 10,
             "the reparsed ENVELOPE written back on node-b")


def test_pop3_login_to_an_old_store(node):
    """The first POP3 login after an upgrade: the loop thread does not
    upgrade the store itself (store_open_current), the user's worker does,
    and the login then sees the mail."""
    import poplib
    from imap_helpers import pop3_addr
    from ternlib import PASSWORD
    with Raw(node).login() as c:
        append(c, MSG)
        append(c, OTHER)
    make_old_store(node, new_port=False)
    host, port = pop3_addr(node)
    p = poplib.POP3(host, port, timeout=10)
    try:
        p.user("alice")
        p.pass_(PASSWORD)
        assert p.stat()[0] == 2
    finally:
        p.quit()
    db = sqlite3.connect(node.mail_db("alice"))
    try:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == 6
    finally:
        db.close()
