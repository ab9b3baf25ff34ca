"""SAVEDATE (RFC 8514) end to end: FETCH SAVEDATE is when the message was
saved into its mailbox (APPEND, LMTP delivery, the target of COPY or MOVE),
as an IMAP date-time string, whatever its INTERNALDATE says; a message
stored before the server kept save dates (a store of schema 4) reports its
internal date, the best the server knows (so never NIL). Bad requests get
BAD and the session goes on.

Not here: SEARCH SAVEDBEFORE/SAVEDON/SAVEDSINCE/SAVEDATESUPPORTED belong to
the SEARCH work."""

import math
import re
import sqlite3
import time
from datetime import datetime

import pytest

from imap_helpers import Raw, capabilities, deliver, fetch_dict, imap_node

MSG = b"Subject: saved\r\n\r\nbody\r\n"
OLD_DATE = "20-Mar-2018 03:07:37 +1100"           # 2018-03-19 16:07:37 UTC
OLD_EPOCH = 1521475657
DATE_TIME = rb'"(\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4})"'


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def session(node):
    return Raw(node).login()


def append(c, folder, date=OLD_DATE):
    _, t = c.cmd_literal(f'APPEND {folder} "{date}"', MSG)
    assert t.startswith("OK"), t


def epoch(text):
    if isinstance(text, bytes):
        text = text.decode()
    return datetime.strptime(text, "%d-%b-%Y %H:%M:%S %z").timestamp()


def savedate(c, seq):
    """FETCH seq (SAVEDATE): the instant, checking the exact response form."""
    untagged = c.ok(f"FETCH {seq} (SAVEDATE)")
    assert len(untagged) == 1, untagged
    m = re.fullmatch(rb"\* %d FETCH \(SAVEDATE " % seq + DATE_TIME + rb"\)", untagged[0])
    assert m, untagged
    return epoch(m.group(1).decode())


class Window:
    """The wall-clock seconds around an action, as the server's clock
    (whole seconds) may show them."""

    def __enter__(self):
        self.start = math.floor(time.time())
        return self

    def __exit__(self, *exc):
        self.end = math.ceil(time.time())

    def __contains__(self, t):
        return self.start <= t <= self.end


def test_savedate_capability_advertised(node):
    with session(node) as c:
        assert "SAVEDATE" in capabilities(c.ok("CAPABILITY"))


def test_savedate_of_append_is_now_not_internaldate(node):
    with session(node) as c:
        with Window() as w:
            append(c, "INBOX")
        c.select("INBOX")
        t = savedate(c, 1)
        assert t in w, (t, w.start, w.end)
        _, d = fetch_dict(c.ok("FETCH 1 (INTERNALDATE SAVEDATE)")[0])
        assert epoch(d["INTERNALDATE"]) == OLD_EPOCH
        assert epoch(d["SAVEDATE"]) == t
        # UID FETCH, and beside other items in the order asked
        untagged = c.ok("UID FETCH 1 (SAVEDATE UID)")
        assert re.fullmatch(rb"\* 1 FETCH \(SAVEDATE " + DATE_TIME + rb" UID 1\)", untagged[0]), \
            untagged
        # EXAMINE shows it too (nothing is written by reading it)
        c.ok("EXAMINE INBOX")
        assert savedate(c, 1) == t


def test_savedate_of_delivery(node):
    with Window() as w:
        deliver(node)
    with session(node) as c:
        c.select("INBOX")
        assert savedate(c, 1) in w


def test_savedate_old_store_is_internaldate_then_copy_move_save_now(node):
    """A message from before save dates reports its INTERNALDATE (RFC 8514
    allows NIL only when the server cannot know; the internal date is when
    it was stored, unless APPEND set it); its COPY and its MOVE are saved
    now, into their new mailbox, and the original keeps its own."""
    with session(node) as c:
        c.ok("CREATE Archive")
        append(c, "INBOX")
        append(c, "INBOX", "01-Jan-2020 00:00:00 +0000")
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
        c.select("INBOX")
        assert savedate(c, 1) == OLD_EPOCH
        assert savedate(c, 2) == 1577836800
        with Window() as w:
            c.ok("COPY 1 Archive")
        assert savedate(c, 1) == OLD_EPOCH
        with Window() as w2:
            c.ok("MOVE 2 Archive")
        c.select("Archive")
        _, d = fetch_dict(c.ok("FETCH 1 (INTERNALDATE SAVEDATE)")[0])
        assert epoch(d["INTERNALDATE"]) == OLD_EPOCH
        assert epoch(d["SAVEDATE"]) in w
        _, d = fetch_dict(c.ok("FETCH 2 (INTERNALDATE SAVEDATE)")[0])
        assert epoch(d["INTERNALDATE"]) == 1577836800
        assert epoch(d["SAVEDATE"]) in w2


def test_savedate_of_copy_and_move_targets(node):
    with session(node) as c:
        c.ok("CREATE Archive")
        with Window() as w:
            append(c, "INBOX")
            append(c, "INBOX")
            c.select("INBOX")
            c.ok("COPY 1 Archive")
            c.ok("MOVE 2 Archive")
        c.select("Archive")
        assert savedate(c, 1) in w
        assert savedate(c, 2) in w


def test_savedate_bad_requests_session_survives(node):
    with session(node) as c:
        append(c, "INBOX")
        c.select("INBOX")
        for bad in ("FETCH 1 (SAVEDATE", "FETCH 1 SAVEDATE[]", "FETCH 1 (SAVEDATES)",
                    "FETCH 1 SAVEDATE.PEEK"):
            _, t = c.cmd(bad)
            assert t.startswith("BAD"), (bad, t)
        assert savedate(c, 1) > 0
