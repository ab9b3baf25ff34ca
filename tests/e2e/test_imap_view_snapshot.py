"""A big folder's message list is saved in the user's store when a session
closes it (a cache, so that the first SELECT after a restart reads one row
rather than every message row). After a restart, what a client is shown
through it must be exactly the folder: the changes made after the snapshot
(flags, keywords, expunges, new mail) included."""

import sqlite3

import pytest

from imap_helpers import Raw, deliver, deliver_many, fetch_dict, imap_node
from ternlib import wait_for

BIG = 1100      # above the size from which views are saved (view.c)


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def snapshot_row(node, user="alice"):
    """(uidvalidity, modseq) of INBOX's saved view, or None."""
    db = sqlite3.connect(f"file:{node.mail_db(user)}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("SELECT s.uidvalidity, s.modseq FROM view_snapshots s"
                          " JOIN folders f ON f.id = s.folder_id WHERE f.name = 'INBOX'").fetchone()
    finally:
        db.close()


def client_view(c):
    """{uid: flags} and the sequence numbers, from what SELECT and FETCH say."""
    untagged = c.ok("SELECT INBOX")
    exists = [int(r.split()[1]) for r in untagged if r.endswith(b" EXISTS")]
    assert exists, untagged
    view, seqs = {}, []
    for r in c.ok("FETCH 1:* (UID FLAGS)"):
        if b" FETCH " not in r:
            continue
        seq, d = fetch_dict(r)
        seqs.append(seq)
        view[int(d["UID"])] = frozenset(str(f) for f in d["FLAGS"]) - {"\\Recent"}
    assert seqs == list(range(1, exists[-1] + 1)), "sequence numbers are not 1..EXISTS"
    return view


def store_view(node, user="alice"):
    """The same, read from the store by ternctl, not through IMAP."""
    out = {}
    for m in node.messages(user):
        flags = m["flags"]
        if isinstance(flags, str):
            flags = flags.split()
        out[int(m["uid"])] = frozenset(flags) - {"\\Recent"}
    return out


def test_select_after_restart_sees_every_later_change(node):
    deliver_many(node, BIG)
    with Raw(node).login() as a:
        a.ok("SELECT INBOX")
        a.ok("STORE 1:40 +FLAGS.SILENT (\\Seen)")
        a.ok("STORE 41 +FLAGS.SILENT (project-x $Label1)")
        a.ok("LOGOUT")
    # saved when the server frees the session, just after LOGOUT's reply
    saved = wait_for(lambda: snapshot_row(node), 10, "a snapshot of INBOX after LOGOUT",
                     retry_on=(sqlite3.OperationalError,))

    # a few changes after it: not enough to save the view again
    with Raw(node).login() as b:
        b.ok("SELECT INBOX")
        b.ok("STORE 10:12 -FLAGS.SILENT (\\Seen)")
        b.ok("STORE 41 -FLAGS.SILENT ($Label1)")
        b.ok("STORE 500 +FLAGS.SILENT (\\Flagged)")
        b.ok("STORE 2,300,301 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        b.ok("LOGOUT")
    for _ in range(3):
        deliver(node)
    assert node.terminate() == 0      # every session freed, its view closed
    assert snapshot_row(node) == saved, "a handful of changes rewrote the snapshot"
    node.start()
    with Raw(node).login() as c:
        seen_by_client = client_view(c)
    truth = store_view(node)
    assert len(truth) == BIG - 3 + 3
    assert seen_by_client == truth

