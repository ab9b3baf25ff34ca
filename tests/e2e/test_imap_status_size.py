"""STATUS=SIZE (RFC 8438) end to end: STATUS mailbox (SIZE) is the total of
the mailbox's messages' RFC822.SIZE, through APPEND, LMTP delivery, COPY,
MOVE and EXPUNGE; the same in LIST-STATUS (RFC 5819, LIST ... RETURN
(STATUS (SIZE))); bad STATUS requests get BAD or NO and the session goes
on."""

import pytest

from imap_helpers import Raw, capabilities, deliver_many, imap_node, parse_sexp, status_of


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def session(node):
    return Raw(node).login()


MSG_A = b"Subject: a\r\n\r\nfirst message\r\n"                 # 29 octets
MSG_B = b"Subject: bb\r\nX-Pad: " + b"x" * 100 + b"\r\n\r\nsecond\r\n"


def append(c, folder, msg):
    _, t = c.cmd_literal(f"APPEND {folder}", msg)
    assert t.startswith("OK"), t


def status_lines(untagged):
    """{name: {item: int}} from * STATUS responses."""
    out = {}
    for r in untagged:
        if r.startswith(b"* STATUS "):
            items = parse_sexp(r, len(b"* STATUS "))
            name = items[0].decode() if isinstance(items[0], bytes) else str(items[0])
            lst = items[1]
            out[name] = {str(lst[i]).upper(): int(lst[i + 1]) for i in range(0, len(lst), 2)}
    return out


def test_status_size_is_the_sum_of_message_sizes(node):
    assert len(MSG_A) == 29
    with session(node) as c:
        c.ok("CREATE Box")
        # an empty mailbox has size 0, exact bytes
        assert c.ok("STATUS Box (SIZE)") == [b"* STATUS Box (SIZE 0)"]
        append(c, "Box", MSG_A)
        assert c.ok("STATUS Box (SIZE)") == [b"* STATUS Box (SIZE 29)"]
        append(c, "Box", MSG_B)
        total = len(MSG_A) + len(MSG_B)
        assert c.ok("STATUS Box (SIZE)") == [b"* STATUS Box (SIZE %d)" % total]
        # in the order asked, beside the other items
        assert c.ok("STATUS Box (MESSAGES SIZE UIDNEXT)") == \
            [b"* STATUS Box (MESSAGES 2 SIZE %d UIDNEXT 3)" % total]
        assert c.ok("STATUS Box (SIZE MESSAGES)") == [b"* STATUS Box (SIZE %d MESSAGES 2)" % total]
        # RFC822.SIZE of the messages agrees
        c.ok("EXAMINE Box")
        d = c.fetch("1:*", "RFC822.SIZE")
        assert sum(int(v["RFC822.SIZE"]) for v in d.values()) == total
        c.ok("UNSELECT")
        # COPY adds to the destination, MOVE moves the octets along
        c.ok("CREATE Other")
        c.select("Box")
        c.ok("COPY 1 Other")
        assert status_of(c.ok("STATUS Other (SIZE)")) == {"SIZE": 29}
        c.ok("MOVE 2 Other")
        assert status_of(c.ok("STATUS Other (SIZE)")) == {"SIZE": 29 + len(MSG_B)}
        assert status_of(c.ok("STATUS Box (SIZE)")) == {"SIZE": 29}
        # EXPUNGE takes them away
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        assert c.ok("STATUS Box (SIZE)") == [b"* STATUS Box (SIZE 0)"]


def test_status_size_of_lmtp_deliveries(node):
    """Delivered messages carry the headers the server added: SIZE counts
    what is stored, as RFC822.SIZE does."""
    deliver_many(node, 3)
    with session(node) as c:
        st = status_of(c.ok("STATUS INBOX (MESSAGES SIZE)"))
        c.ok("EXAMINE INBOX")
        d = c.fetch("1:*", "RFC822.SIZE")
        assert st == {"MESSAGES": 3, "SIZE": sum(int(v["RFC822.SIZE"]) for v in d.values())}
        assert st["SIZE"] > 0


def test_list_status_size(node):
    """LIST-STATUS (RFC 5819) with SIZE: a STATUS response right after the
    LIST response of each selectable mailbox, with the STATUS command's
    numbers."""
    with session(node) as c:
        c.ok("CREATE Box")
        c.ok("CREATE Deep/Er")
        c.ok("DELETE Deep")          # leaves Deep as a \NonExistent parent
        append(c, "Box", MSG_A)
        append(c, "Box", MSG_B)
        append(c, "Deep/Er", MSG_A)
        untagged = c.ok('LIST "" * RETURN (STATUS (SIZE))')
        listed = [r for r in untagged if r.startswith(b"* LIST ")]
        got = status_lines(untagged)
        # every LIST of a mailbox that exists is followed by its STATUS
        for i, r in enumerate(untagged):
            if r.startswith(b"* LIST ") and b"\\NonExistent" not in r:
                name = parse_sexp(r, len(b"* LIST "))[2]
                name = name.decode() if isinstance(name, bytes) else str(name)
                assert untagged[i + 1].startswith(b"* STATUS "), untagged
                assert name in got, (name, untagged)
        assert "Deep" not in got, "no STATUS for a mailbox that does not exist"
        assert b"* STATUS Box (SIZE %d)" % (len(MSG_A) + len(MSG_B)) in untagged, untagged
        assert b"* STATUS Deep/Er (SIZE 29)" in untagged, untagged
        assert got["Sent"] == {"SIZE": 0}
        assert len(got) == len([r for r in listed if b"\\NonExistent" not in r])
        for name, items in got.items():
            assert status_of(c.ok(f'STATUS "{name}" (SIZE)')) == items, name
        # with other items, in the order asked
        untagged = c.ok('LIST "" Box RETURN (STATUS (MESSAGES SIZE))')
        assert untagged[-1] == b"* STATUS Box (MESSAGES 2 SIZE %d)" % (len(MSG_A) + len(MSG_B)), \
            untagged


def test_status_size_bad_requests(node):
    with session(node) as c:
        _, t = c.cmd("STATUS NoSuch (SIZE)")
        assert t.startswith("NO [NONEXISTENT]"), t
        for bad in ("STATUS INBOX (SIZE", "STATUS INBOX SIZE", "STATUS INBOX (SIZE 1)",
                    "STATUS INBOX ()", "STATUS (SIZE)"):
            _, t = c.cmd(bad)
            assert t.startswith("BAD"), (bad, t)
        _, t = c.cmd('LIST "" * RETURN (STATUS (SIZE BOGUS))')
        assert t.startswith("BAD"), t
        assert c.ok("STATUS INBOX (SIZE)") == [b"* STATUS INBOX (SIZE 0)"]


def test_status_size_is_advertised(node):
    """RFC 8438 section 3: a server that supports SIZE advertises STATUS=SIZE."""
    with session(node) as c:
        assert "STATUS=SIZE" in capabilities(c.ok("CAPABILITY"))
