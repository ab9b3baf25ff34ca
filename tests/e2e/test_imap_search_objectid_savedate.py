"""SEARCH keys of OBJECTID (RFC 8474 §6: EMAILID, THREADID) and SAVEDATE
(RFC 8514 §4: SAVEDBEFORE, SAVEDON, SAVEDSINCE, SAVEDATESUPPORTED) end to
end. The save date is compared by its day in UTC (the zone FETCH SAVEDATE
shows), "disregarding time and timezone" like BEFORE/ON/SINCE; every
message here has a save date, so SAVEDATESUPPORTED matches all of them.
THREADID never matches: Tern's THREADID is always NIL. Bad arguments get
BAD and the session goes on."""

import re
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from imap_helpers import Raw, fetch_dict, imap_node

OBJECTID = rb"[A-Za-z0-9_-]{1,255}"

MSG = (b"From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
       b"Subject: afternoon meeting\r\n"
       b"To: mooch@owatagu.siam.edu.example\r\n"
       b"\r\n"
       b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n")
OLD_DATE = '"20-Mar-2018 03:07:37 +1100"'     # INTERNALDATE; the save date is now


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def session(node):
    return Raw(node).login()


def append(c, folder, msg=MSG, date=OLD_DATE):
    _, t = c.cmd_literal(f"APPEND {folder} {date}", msg)
    assert t.startswith("OK"), t


def emailid(c, seq):
    untagged = c.ok(f"FETCH {seq} (EMAILID)")
    m = re.fullmatch(rb"\* %d FETCH \(EMAILID \((" % seq + OBJECTID + rb")\)\)", untagged[0])
    assert m, untagged
    return m.group(1).decode()


def imap_day(d):
    return f"{d.day}-{d.strftime('%b')}-{d.year}"


def saved_day(c, seq):
    """The UTC calendar day of the message's FETCH SAVEDATE."""
    _, d = fetch_dict(c.ok(f"FETCH {seq} (SAVEDATE)")[0])
    v = d["SAVEDATE"]
    t = datetime.strptime(v.decode() if isinstance(v, bytes) else str(v), "%d-%b-%Y %H:%M:%S %z")
    return t.astimezone(timezone.utc).date()


def test_rfc8474_search_emailid_example(node):
    """RFC 8474 §6: "27 SEARCH EMAILID M6d99ac3275bb4e" finds the one
    message with that id (Tern's ids in place of the RFC's); its COPY in
    another mailbox has the same EMAILID and is found there."""
    with session(node) as c:
        c.ok("CREATE Other")
        append(c, "INBOX")
        append(c, "INBOX", b"Subject: another\r\n\r\nx\r\n")
        c.select("INBOX")
        id1, id2 = emailid(c, 1), emailid(c, 2)
        assert id1 != id2
        c.send(f"27 SEARCH EMAILID {id1}\r\n")
        assert c.response() == b"* SEARCH 1"
        assert c.response().startswith(b"27 OK")
        assert c.search(f"EMAILID {id2}") == [2]
        assert c.search(f"EMAILID {id2}", uid=True) == [2]
        assert c.search("EMAILID Mnosuchid") == []
        # objectids are case-sensitive (RFC 8474 §7: compared byte for byte)
        other = id1.swapcase()
        if other != id1:
            assert c.search(f"EMAILID {other}") == []
        assert c.search(f"NOT EMAILID {id1}") == [2]
        assert c.search(f"OR EMAILID {id1} EMAILID {id2}") == [1, 2]
        c.ok("COPY 1 Other")
        c.select("Other")
        assert c.search(f"EMAILID {id1}") == [1]
        assert c.search(f"EMAILID {id2}") == []


def test_rfc8474_search_threadid_example_matches_nothing(node):
    """RFC 8474 §6: "28 SEARCH THREADID T64b478a75b7ea9"; Tern's THREADID is
    NIL for every message, so no thread id matches any message."""
    with session(node) as c:
        append(c, "INBOX")
        c.select("INBOX")
        c.send("28 SEARCH THREADID T64b478a75b7ea9\r\n")
        assert c.response() == b"* SEARCH"
        assert c.response().startswith(b"28 OK")
        assert c.search("NOT THREADID T64b478a75b7ea9") == [1]


def test_search_objectid_bad_arguments_session_survives(node):
    with session(node) as c:
        append(c, "INBOX")
        c.select("INBOX")
        for bad in ("SEARCH EMAILID", "SEARCH THREADID", 'SEARCH EMAILID "a b"',
                    "SEARCH EMAILID M1.2", 'SEARCH EMAILID ""',
                    "SEARCH EMAILID " + "a" * 256, "SEARCH EMAILID (M1)"):
            _, t = c.cmd(bad)
            assert t.startswith("BAD"), (bad, t)
        assert c.search("EMAILID " + "a" * 255) == []
        assert c.search('EMAILID "Mquoted_id-1"') == []
        assert c.search("ALL") == [1]


def test_search_savedon_savedbefore_savedsince_today(node):
    """Appended now with an INTERNALDATE of 2018: the SAVED* keys see the
    save date (today), BEFORE/ON/SINCE the internal date."""
    with session(node) as c:
        append(c, "INBOX")
        append(c, "INBOX")
        c.select("INBOX")
        today = saved_day(c, 1)
        assert saved_day(c, 2) == today
        day, prev, nxt = imap_day(today), imap_day(today - timedelta(1)), imap_day(today + timedelta(1))
        assert c.search(f"SAVEDON {day}") == [1, 2]
        assert c.search(f"SAVEDON {prev}") == []
        assert c.search(f"SAVEDBEFORE {day}") == []
        assert c.search(f"SAVEDBEFORE {nxt}") == [1, 2]
        assert c.search(f"SAVEDSINCE {day}") == [1, 2]
        assert c.search(f"SAVEDSINCE {nxt}") == []
        assert c.search(f'SAVEDON "{day}"') == [1, 2]
        assert c.search("ON 20-Mar-2018") == [1, 2]
        assert c.search("SAVEDON 20-Mar-2018") == []
        assert c.search("SAVEDBEFORE 19-Mar-2018") == []


def test_search_saved_keys_by_utc_day_of_stored_save_dates(node):
    """Save dates set in the store: day boundaries are UTC days, as FETCH
    SAVEDATE shows them; the keys combine with NOT/OR and UID SEARCH."""
    with session(node) as c:
        for _ in range(4):
            append(c, "INBOX")
    assert node.terminate() == 0
    db = sqlite3.connect(node.mail_db("alice"))
    # 2019-01-03 23:59:59, 2019-01-04 00:00:00, 2019-01-04 23:59:59, 2019-01-05 00:00:00 UTC
    for uid, t in ((1, 1546559999), (2, 1546560000), (3, 1546646399), (4, 1546646400)):
        db.execute("UPDATE messages SET save_date = ? WHERE uid = ?"
                   " AND folder_id = (SELECT id FROM folders WHERE name = 'INBOX')", (t, uid))
    db.commit()
    db.close()
    node.start()
    with session(node) as c:
        c.select("INBOX")
        assert c.search("SAVEDON 4-Jan-2019") == [2, 3]
        assert c.search("SAVEDBEFORE 4-Jan-2019") == [1]
        assert c.search("SAVEDSINCE 4-Jan-2019") == [2, 3, 4]
        assert c.search("SAVEDSINCE 5-Jan-2019") == [4]
        assert c.search("NOT SAVEDON 4-Jan-2019") == [1, 4]
        assert c.search("OR SAVEDBEFORE 4-Jan-2019 SAVEDSINCE 5-Jan-2019") == [1, 4]
        assert c.search("SAVEDSINCE 4-Jan-2019 SAVEDBEFORE 5-Jan-2019", uid=True) == [2, 3]
        assert c.search("SAVEDON 4-Jan-2019 ON 20-Mar-2018") == [2, 3]


def test_search_savedatesupported_matches_every_message(node):
    """RFC 8514 §4: SAVEDATESUPPORTED matches every message of a mailbox that
    keeps save dates; here all of them do."""
    with session(node) as c:
        c.select("INBOX")
        assert c.search("SAVEDATESUPPORTED") == []
        append(c, "INBOX")
        append(c, "INBOX")
        c.select("INBOX")
        assert c.search("SAVEDATESUPPORTED") == [1, 2]
        assert c.search("NOT SAVEDATESUPPORTED") == []
        _, t = c.cmd("SEARCH RETURN (COUNT) SAVEDATESUPPORTED")
        assert t.startswith("OK"), t


def test_search_savedate_bad_arguments_session_survives(node):
    with session(node) as c:
        append(c, "INBOX")
        c.select("INBOX")
        for bad in ("SEARCH SAVEDON", "SEARCH SAVEDBEFORE 32-Jan-2019",
                    "SEARCH SAVEDSINCE 2019-01-04", "SEARCH SAVEDATESUPPORTED 1-Jan-2019 x",
                    "SEARCH SAVEDON (4-Jan-2019)"):
            _, t = c.cmd(bad)
            assert t.startswith("BAD"), (bad, t)
        assert c.search("ALL") == [1]


def test_sort_with_saved_and_emailid_keys(node):
    """SORT evaluates the same keys (RFC 5256 search criteria)."""
    with session(node) as c:
        append(c, "INBOX", b"Subject: b\r\n\r\nx\r\n")
        append(c, "INBOX", b"Subject: a\r\n\r\nx\r\n")
        c.select("INBOX")
        id2 = emailid(c, 2)
        day = imap_day(saved_day(c, 1))
        untagged = c.ok(f"SORT (SUBJECT) UTF-8 SAVEDON {day}")
        assert untagged == [b"* SORT 2 1"], untagged
        untagged = c.ok(f"SORT (SUBJECT) UTF-8 NOT EMAILID {id2}")
        assert untagged == [b"* SORT 1"], untagged
