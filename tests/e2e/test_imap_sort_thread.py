"""SORT (RFC 5256) with SORT=DISPLAY (RFC 5957) and ESORT (RFC 5267), THREAD
ORDEREDSUBJECT and REFERENCES (RFC 5256), and WITHIN (RFC 5032), end to end:
exact orders and exact thread trees for crafted messages, as a client
(Roundcube) relies on them."""

import time

import pytest

from imap_helpers import Raw, capabilities, imap_node

PAD = "padding line for the size ordering\r\n"

SORT_CORPUS = [
    # (internal date, message)
    ("01-Jan-2023 00:00:00 +0000",
     "From: Zed <zoe@z.test>\r\nTo: bob@b.test\r\nCc: carol@c.test\r\nSubject: Re: apple\r\n"
     "Date: Mon, 01 Mar 2021 10:00:00 +0000\r\nMessage-ID: <s1@t>\r\n\r\nshort\r\n"),
    ("02-Jan-2023 00:00:00 +0000",
     "From: Bob <bob@b.test>\r\nTo: Aaron <zed@a.test>\r\nSubject: banana\r\n"
     "Date: Wed, 01 Jan 2020 10:00:00 +0000\r\nMessage-ID: <s2@t>\r\n\r\n" + PAD * 20),
    ("03-Jan-2019 00:00:00 +0000",
     "From: =?UTF-8?Q?=C3=84rger?= <charlie@c.test>\r\nTo: amy@x.test\r\nCc: Bob@b.test\r\n"
     "Subject: [list] Fwd: Cherry (fwd)\r\nMessage-ID: <s3@t>\r\n\r\n" + PAD * 60),
    ("04-Jan-2023 00:00:00 +0000",
     "From: dave@d.test\r\nTo: Mike <mike@m.test>\r\nCc: abe@a.test\r\n"
     "Subject: =?UTF-8?Q?=5Bfwd=3A_Apple=5D?=\r\n"
     "Date: Tue, 01 Feb 2022 10:00:00 +0000\r\nMessage-ID: <s4@t>\r\n\r\n" + PAD * 150),
]


def thread_msg(msgid, subject, day, refs=None, irt=None):
    h = f"From: t@t.test\r\nTo: u@t.test\r\nSubject: {subject}\r\nMessage-ID: <{msgid}>\r\n"
    if refs:
        h += "References: " + "\r\n ".join(f"<{r}>" for r in refs) + "\r\n"
    if irt:
        h += f"In-Reply-To: <{irt}>\r\n"
    return h + f"Date: {day} Jan 2020 10:00:00 +0000\r\n\r\nbody\r\n"


THREAD_CORPUS = [
    thread_msg("a@x", "Topic", "01"),                                  # 1
    thread_msg("b@x", "Re: Topic", "02", irt="a@x"),                   # 2
    thread_msg("c@x", "Re: Topic", "03", refs=["a@x", "b@x"]),         # 3
    thread_msg("d@x", "RE: [list] Topic", "04", refs=["a@x"]),         # 4
    thread_msg("e@x", "Other", "05"),                                  # 5
    thread_msg("f@x", "Re: Lost", "06", refs=["missing@x"]),           # 6
    thread_msg("g@x", "Re: Lost", "07", refs=["missing@x"]),           # 7
    thread_msg("h@x", "Re: Other", "08"),                              # 8
    "From: t@t.test\r\nSubject: Solo\r\nMessage-ID: <i@x>\r\n"
    "Date: 31 Dec 2019 10:00:00 +0000\r\n\r\nbody\r\n",                # 9
]


def fill(c, folder, corpus):
    """Creates folder with a deleted spacer first, so UID = seq + 1."""
    c.ok(f"CREATE {folder}")
    _, t = c.cmd_literal(f"APPEND {folder}", b"Subject: spacer\r\n\r\nx\r\n")
    assert t.startswith("OK"), t
    for item in corpus:
        date, msg = item if isinstance(item, tuple) else ("01-Jan-2024 00:00:00 +0000", item)
        _, t = c.cmd_literal(f'APPEND {folder} () "{date}"', msg.encode())
        assert t.startswith("OK"), t
    c.select(folder)
    c.ok("STORE 1 +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")


@pytest.fixture
def client(make_ternd):
    node = imap_node(make_ternd, max_bad_commands=100)
    c = Raw(node).login()
    yield c
    c.close()


@pytest.fixture
def sorted_box(client):
    fill(client, "sortbox", SORT_CORPUS)
    return client


@pytest.fixture
def thread_box(client):
    fill(client, "threadbox", THREAD_CORPUS)
    return client


def one(untagged, prefix):
    lines = [r for r in untagged if r.startswith(prefix)]
    assert len(lines) == 1, untagged
    return lines[0]


def sort(c, criteria, search="ALL", uid=False, charset="UTF-8"):
    untagged = c.ok(f"{'UID ' if uid else ''}SORT ({criteria}) {charset} {search}")
    line = one(untagged, b"* SORT")
    return [int(x) for x in line[len(b"* SORT"):].split()]


def thread(c, algo, search="ALL", uid=False):
    untagged = c.ok(f"{'UID ' if uid else ''}THREAD {algo} UTF-8 {search}")
    return one(untagged, b"* THREAD").decode()[len("* THREAD"):].lstrip(" ")


def test_capabilities_advertised(client):
    caps = capabilities(client.ok("CAPABILITY"))
    for cap in ("SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES", "WITHIN"):
        assert cap in caps, caps


def test_sort_single_keys(sorted_box):
    c = sorted_box
    assert sort(c, "ARRIVAL") == [3, 1, 2, 4]
    assert sort(c, "DATE") == [3, 2, 1, 4]          # no Date: -> INTERNALDATE
    assert sort(c, "SIZE") == [1, 2, 3, 4]
    assert sort(c, "REVERSE SIZE") == [4, 3, 2, 1]
    # base subjects: apple, banana, Cherry, Apple (encoded "[fwd: Apple]")
    assert sort(c, "SUBJECT") == [1, 4, 2, 3]
    # ties keep mailbox order even under REVERSE
    assert sort(c, "REVERSE SUBJECT") == [3, 2, 1, 4]
    assert sort(c, "FROM") == [2, 3, 4, 1]          # bob charlie dave zoe
    assert sort(c, "TO") == [3, 1, 4, 2]            # amy bob mike zed
    assert sort(c, "CC") == [2, 4, 3, 1]            # (none) abe Bob carol


def test_sort_display(sorted_box):
    c = sorted_box
    # decoded display name, else the address: Ärger Bob dave@d.test Zed
    assert sort(c, "DISPLAYFROM") == [3, 2, 4, 1]
    # Aaron amy@x.test bob@b.test Mike
    assert sort(c, "DISPLAYTO") == [2, 3, 1, 4]
    assert sort(c, "REVERSE DISPLAYFROM") == [1, 4, 2, 3]


def test_sort_multiple_keys_search_and_uid(sorted_box):
    c = sorted_box
    assert sort(c, "SUBJECT REVERSE DATE") == [4, 1, 2, 3]
    assert sort(c, "SIZE", "SINCE 01-Jan-2023") == [1, 2, 4]
    assert sort(c, "REVERSE ARRIVAL", "OR FROM bob FROM zoe") == [2, 1]
    assert sort(c, "DATE", uid=True) == [4, 3, 2, 5]
    assert sort(c, "DATE", "UID 2:4", uid=True) == [4, 3, 2]
    assert sort(c, "SIZE", charset="US-ASCII") == [1, 2, 3, 4]
    assert sort(c, "SIZE", "SUBJECT nothing-matches") == []


def test_esort(sorted_box):
    c = sorted_box
    untagged = c.ok("SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL")
    line = one(untagged, b"* ESEARCH").decode()
    assert line.endswith(" MIN 3 MAX 4 COUNT 4 ALL 3,2,1,4"), line
    untagged = c.ok("UID SORT RETURN (ALL) (ARRIVAL) UTF-8 ALL")
    line = one(untagged, b"* ESEARCH").decode()
    assert line.endswith(" UID ALL 4,2:3,5"), line
    untagged = c.ok("SORT RETURN () (REVERSE SIZE) UTF-8 ALL")
    assert one(untagged, b"* ESEARCH").decode().endswith(" ALL 4,3,2,1")
    untagged = c.ok("SORT RETURN (COUNT) (SIZE) UTF-8 SUBJECT nothing-matches")
    assert one(untagged, b"* ESEARCH").decode().endswith(" COUNT 0")
    # SAVE, then "$" in SEARCH
    untagged = c.ok("SORT RETURN (SAVE MIN) (REVERSE SIZE) UTF-8 ALL")
    assert one(untagged, b"* ESEARCH").decode().endswith(" MIN 4")
    assert [int(x) for x in one(c.ok("SEARCH $"), b"* SEARCH").split()[2:]] == [4]
    untagged = c.ok("SORT RETURN (SAVE) (SIZE) UTF-8 SINCE 01-Jan-2023")
    assert not [r for r in untagged if r.startswith(b"* ESEARCH")]
    assert [int(x) for x in one(c.ok("SEARCH $"), b"* SEARCH").split()[2:]] == [1, 2, 4]


def test_sort_errors(sorted_box):
    c = sorted_box
    _, t = c.cmd("SORT (DATE) KOI8-R ALL")
    assert t.startswith("NO [BADCHARSET"), t
    for bad in ("SORT (FOO) UTF-8 ALL", "SORT DATE UTF-8 ALL", "SORT () UTF-8 ALL",
                "SORT (REVERSE) UTF-8 ALL", "SORT (DATE) UTF-8", "SORT (DATE)",
                "SORT (DATE) UTF-8 BOGUS", "SORT RETURN (FOO) (DATE) UTF-8 ALL"):
        _, t = c.cmd(bad)
        assert t.startswith("BAD"), (bad, t)
    c.ok("UNSELECT")
    _, t = c.cmd("SORT (DATE) UTF-8 ALL")
    assert t.startswith("BAD"), t


def test_thread_references(thread_box):
    c = thread_box
    assert thread(c, "REFERENCES") == "(9)(1 (2 3)(4))(5 8)((6)(7))"
    assert thread(c, "REFERENCES", uid=True) == "(10)(2 (3 4)(5))(6 9)((7)(8))"
    assert thread(c, "REFERENCES", "NOT SUBJECT Other") == "(9)(1 (2 3)(4))((6)(7))"
    # without their root, 2 and 4 hang from a dummy for <a@x>
    assert thread(c, "REFERENCES", "2:4") == "((2 3)(4))"
    # one child of a missing parent is promoted to the top
    assert thread(c, "REFERENCES", "6") == "(6)"


def test_thread_orderedsubject(thread_box):
    c = thread_box
    assert thread(c, "ORDEREDSUBJECT") == "(9)(1 (2)(3)(4))(5 8)(6 7)"
    assert thread(c, "ORDEREDSUBJECT", uid=True) == "(10)(2 (3)(4)(5))(6 9)(7 8)"
    assert thread(c, "ORDEREDSUBJECT", "SUBJECT nothing-matches") == ""


def test_thread_errors(thread_box):
    c = thread_box
    for bad in ("THREAD FOO UTF-8 ALL", "THREAD REFERENCES", "THREAD REFERENCES UTF-8",
                "THREAD (REFERENCES) UTF-8 ALL"):
        _, t = c.cmd(bad)
        assert t.startswith("BAD"), (bad, t)
    _, t = c.cmd("THREAD REFERENCES ISO-2022-JP ALL")
    assert t.startswith("NO [BADCHARSET"), t


def test_within(client):
    c = client
    old = "Subject: old\r\n\r\nx\r\n"
    _, t = c.cmd_literal('APPEND INBOX () "01-Jan-2001 00:00:00 +0000"', old.encode())
    assert t.startswith("OK"), t
    _, t = c.cmd_literal("APPEND INBOX", b"Subject: new\r\n\r\nx\r\n")
    assert t.startswith("OK"), t
    c.select()
    assert c.search("YOUNGER 3600") == [2]
    assert c.search("OLDER 3600") == [1]
    assert sorted(c.search("OR OLDER 86400 YOUNGER 86400")) == [1, 2]
    _, t = c.cmd("SEARCH YOUNGER 0")
    assert t.startswith("BAD"), t
