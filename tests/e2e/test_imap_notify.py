"""NOTIFY (RFC 5465): one session sets NOTIFY, another changes the store
(APPEND, EXPUNGE, CREATE, RENAME, DELETE, SUBSCRIBE, LMTP delivery), and
the first one sees untagged STATUS (mailboxes not selected, section 5.2-5.3),
EXISTS (the selected mailbox with a SELECTED filter, section 5.1) and LIST
(MailboxName, SubscriptionChange: section 5.4-5.5) responses without sending
a command, or in IDLE. Bad events are NO [BADEVENT], bad syntax BAD, and the
connection goes on. Every wait has a deadline."""

import re
import time

import pytest

from imap_helpers import Raw, capabilities, deliver, fetch_dict, imap_node, parse_sexp

MSG = b"From: a@a.test\r\nTo: alice@example.org\r\nSubject: notify\r\n\r\nhello\r\n"

# RFC 5465 section 3's shape, the brief's exact bytes
SET_EXAMPLE = ("NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge FlagChange)) "
               "(PERSONAL (MessageNew MessageExpunge MailboxName SubscriptionChange))")


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd, max_bad_commands=100)


def append(c, folder="Lists"):
    _, t = c.cmd_literal(f"APPEND {folder}", MSG)
    assert t.startswith("OK"), t


def wait_for(c, pattern, timeout=10):
    """Reads unsolicited responses until one matches pattern; returns
    (the match, everything read before it)."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {pattern!r} within {timeout}s; got {seen!r}"
        r = c.poll(remaining)
        if r is None:
            continue
        if re.match(pattern, r):
            return r, seen
        seen.append(r)


def status_items(line):
    items = parse_sexp(line, len(b"* STATUS "))
    lst = items[-1]
    return str(items[0]), {str(lst[i]).upper(): int(lst[i + 1]) for i in range(0, len(lst), 2)}


def two(node):
    a = Raw(node).login()
    b = Raw(node).login()
    return a, b


def test_notify_capability(node):
    with Raw(node) as c:
        c.login()
        assert "NOTIFY" in capabilities(c.ok("CAPABILITY"))


def test_set_example_and_none(node):
    with Raw(node) as c:
        c.login()
        c.ok("SELECT INBOX")
        c.ok(SET_EXAMPLE)
        c.ok("NOTIFY NONE")
        c.ok("NOOP")


def test_status_when_another_session_appends(node):
    a, b = two(node)
    with a, b:
        a.ok("CREATE Lists")
        a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
        append(b)
        line, _ = wait_for(a, rb"\* STATUS ")
        name, items = status_items(line)
        assert name == "Lists"
        assert items["MESSAGES"] == 1 and items["UIDNEXT"] == 2 and items["UNSEEN"] == 1
        assert "UIDVALIDITY" in items and "HIGHESTMODSEQ" not in items
        append(b)
        line, _ = wait_for(a, rb"\* STATUS ")
        assert status_items(line)[1]["MESSAGES"] == 2
        a.ok("NOOP")


def test_status_on_expunge(node):
    a, b = two(node)
    with a, b:
        b.ok("CREATE Lists")
        append(b)
        a.ok("NOTIFY SET (SUBTREE Lists (MessageNew MessageExpunge))")
        b.ok("SELECT Lists")
        b.ok("STORE 1 +FLAGS (\\Deleted)")
        b.ok("EXPUNGE")
        line, _ = wait_for(a, rb"\* STATUS ")
        name, items = status_items(line)
        assert name == "Lists" and items["MESSAGES"] == 0 and items["UIDNEXT"] == 2


def test_delivery_to_inboxes_in_idle(node):
    a = Raw(node).login()
    with a:
        a.ok("NOTIFY SET (INBOXES (MessageNew MessageExpunge))")
        a.send("I1 IDLE\r\n")
        assert a.response().startswith(b"+")
        deliver(node)
        line, _ = wait_for(a, rb"\* STATUS ")
        name, items = status_items(line)
        assert name == "INBOX" and items["MESSAGES"] == 1
        a.send("DONE\r\n")
        _, tagged = a.wait("I1")
        assert tagged.startswith("OK")


def test_inboxes_takes_folders_a_plus_detail_delivers_to(node):
    """RFC 5465 section 6.1: INBOXES is every mailbox an MDA may deliver to.
    LMTP delivers alice+Lists@... into an existing folder Lists, so Lists is
    one of them."""
    a = Raw(node).login()
    with a:
        a.ok("CREATE Lists")
        a.ok("NOTIFY SET (INBOXES (MessageNew MessageExpunge))")
        deliver(node, user="alice+Lists")
        line, _ = wait_for(a, rb"\* STATUS ")
        name, items = status_items(line)
        assert name == "Lists" and items["MESSAGES"] == 1, line


def test_inboxes_leaves_out_folders_no_address_can_name(node):
    """A folder whose name no +detail can carry (a space, 8-bit text) gets
    no mail from LMTP, so INBOXES does not watch it."""
    a, b = two(node)
    with a, b:
        a.ok('CREATE "Two Words"')
        a.ok("CREATE M&APw-ll")
        untagged = a.ok("NOTIFY SET STATUS (INBOXES (MessageNew MessageExpunge))")
        # section 5.1's STATUS option: one STATUS for each watched mailbox
        def text(v):
            return v.decode() if isinstance(v, bytes) else str(v)
        watched = {text(parse_sexp(r, len(b"* STATUS "))[0])
                   for r in untagged if r.startswith(b"* STATUS ")}
        folders = {text(parse_sexp(r, len(b"* LIST "))[-1]) for r in a.ok('LIST "" "*"')}
        assert watched == folders - {"Two Words", "M&APw-ll"} and "INBOX" in watched, watched
        append(b, '"Two Words"')
        append(b, "M&APw-ll")
        deliver(node)
        line, before = wait_for(a, rb"\* STATUS \"?INBOX")
        assert not [r for r in before if r.startswith(b"* STATUS")], before


def test_condstore_adds_highestmodseq(node):
    a, b = two(node)
    with a, b:
        a.ok("CREATE Lists")
        a.ok("ENABLE CONDSTORE")
        a.ok("NOTIFY SET (MAILBOXES Lists (MessageNew MessageExpunge))")
        append(b)
        line, _ = wait_for(a, rb"\* STATUS ")
        assert status_items(line)[1]["HIGHESTMODSEQ"] > 0


def test_unwatched_mailbox_not_reported(node):
    a, b = two(node)
    with a, b:
        a.ok("CREATE Lists")
        a.ok("CREATE Other")
        a.ok("NOTIFY SET (MAILBOXES Lists (MessageNew MessageExpunge)) "
             "(MAILBOXES Other NONE)")
        append(b, "Other")
        append(b, "Lists")
        line, seen = wait_for(a, rb"\* STATUS ")
        assert status_items(line)[0] == "Lists"
        assert not [r for r in seen if r.startswith(b"* STATUS")], seen
        a.ok("NOOP")


def test_groups_add_up_until_none(node):
    """A mailbox takes the events of each group that names it, in order,
    up to one that says NONE for it."""
    a, b = two(node)
    with a, b:
        a.ok("CREATE Lists")
        a.ok("CREATE Quiet")
        a.ok("NOTIFY SET (SUBTREE Lists (MailboxName)) (MAILBOXES Quiet NONE) "
             "(PERSONAL (MessageNew MessageExpunge))")
        append(b, "Quiet")      # NONE first: nothing
        append(b, "Lists")      # MailboxName from the first, message events from PERSONAL
        line, seen = wait_for(a, rb"\* STATUS ")
        assert status_items(line)[0] == "Lists", line
        assert not [r for r in seen if r.startswith(b"* STATUS")], seen
        b.ok("RENAME Quiet Quiet2")     # Quiet2 is PERSONAL's, without MailboxName
        b.ok("CREATE Lists/x")
        line, seen = wait_for(a, rb"\* LIST ")
        assert line == b'* LIST () "/" Lists/x', (line, seen)


def test_names_are_modified_utf7(node):
    a, b = two(node)
    with a, b:
        a.ok('CREATE "&AOk-t&AOk-"')
        a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge MailboxName))")
        append(b, '"&AOk-t&AOk-"')
        line, _ = wait_for(a, rb"\* STATUS ")
        assert line.startswith(b"* STATUS &AOk-t&AOk- (MESSAGES 1 "), line
        b.ok('RENAME "&AOk-t&AOk-" "Hiver"')
        line, _ = wait_for(a, rb"\* LIST ")
        assert line == b'* LIST () "/" Hiver ("OLDNAME" (&AOk-t&AOk-))', line


def test_flag_change_only_with_flagchange(node):
    a, b = two(node)
    with a, b:
        b.ok("CREATE Lists")
        append(b)
        append(b)
        a.ok("NOTIFY SET (MAILBOXES Lists (MessageNew MessageExpunge FlagChange))")
        b.ok("SELECT Lists")
        b.ok("STORE 1 +FLAGS (\\Seen)")
        line, _ = wait_for(a, rb"\* STATUS ")
        name, items = status_items(line)
        assert name == "Lists" and items["UNSEEN"] == 1 and items["MESSAGES"] == 2


def test_selected_mailbox_exists_without_a_command(node):
    a, b = two(node)
    with a, b:
        a.ok("SELECT INBOX")
        a.ok(SET_EXAMPLE)
        append(b, "INBOX")
        line, seen = wait_for(a, rb"\* 1 EXISTS")
        # the selected mailbox gets EXISTS, never STATUS
        assert not [r for r in seen if r.startswith(b"* STATUS")], seen
        a.ok("NOOP")


def test_selected_expunge_without_a_command(node):
    a, b = two(node)
    with a, b:
        append(b, "INBOX")
        a.ok("SELECT INBOX")
        a.ok("NOTIFY SET (SELECTED (MessageNew MessageExpunge))")
        b.ok("SELECT INBOX")
        b.ok("STORE 1 +FLAGS (\\Deleted)")
        b.ok("EXPUNGE")
        wait_for(a, rb"\* 1 EXPUNGE")
        a.ok("NOOP")


def test_selected_delayed_keeps_expunges_for_a_command(node):
    """SELECTED-DELAYED (section 5.1): EXISTS at once, EXPUNGE only with a
    command that may send it."""
    a, b = two(node)
    with a, b:
        append(b, "INBOX")
        a.ok("SELECT INBOX")
        a.ok("NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge))")
        b.ok("SELECT INBOX")
        b.ok("STORE 1 +FLAGS (\\Deleted)")
        b.ok("EXPUNGE")
        append(b, "INBOX")
        _, seen = wait_for(a, rb"\* 2 EXISTS")
        assert not [r for r in seen if r.endswith(b"EXPUNGE")], seen
        untagged = a.ok("NOOP")
        assert b"* 1 EXPUNGE" in untagged, untagged


def test_message_new_fetch_attributes(node):
    """RFC 5465 section 5.1's form: the new message's FETCH, with the
    attributes asked for, follows its EXISTS without a command; BODY.PEEK
    leaves it unseen."""
    a, b = two(node)
    with a, b:
        append(b, "INBOX")
        a.ok("SELECT INBOX")
        a.ok("NOTIFY SET (SELECTED (MessageNew (uid body.peek[header.fields (from to subject)]) "
             "MessageExpunge))")
        append(b, "INBOX")
        wait_for(a, rb"\* 2 EXISTS")
        line, _ = wait_for(a, rb"\* \d+ FETCH ")
        seq, d = fetch_dict(line)
        assert seq == 2 and int(d["UID"]) == 2, line
        assert d["BODY[HEADER.FIELDS (FROM TO SUBJECT)]"] == (
            b"From: a@a.test\r\nTo: alice@example.org\r\nSubject: notify\r\n\r\n"), line
        # the message that was there before NOTIFY SET got no FETCH, and the
        # new one stays unseen
        assert "\\Seen" not in a.fetch("2", "FLAGS")[2]["FLAGS"]


def test_message_new_fetch_when_a_command_saw_it_first(node):
    """Whether the wake-up or the client's own command reports the new
    message's EXISTS, its FETCH follows (after the command's reply at the
    latest), once."""
    a, b = two(node)
    with a, b:
        a.ok("SELECT INBOX")
        a.ok("NOTIFY SET (SELECTED (MessageNew (UID) MessageExpunge))")
        for uid in (1, 2, 3):
            append(b, "INBOX")
            untagged = a.ok("NOOP")
            fetches = [r for r in untagged if re.match(rb"\* \d+ FETCH", r)]
            if not fetches:
                line, seen = wait_for(a, rb"\* \d+ FETCH")
                fetches = [line]
            assert fetches == [b"* %d FETCH (UID %d)" % (uid, uid)], untagged
        a.ok("UNSELECT")
        a.ok("SELECT INBOX")
        untagged = a.ok("NOOP")
        # a new SELECT: what it reported gets no FETCH
        assert not [r for r in untagged if b"FETCH" in r], untagged
        append(b, "INBOX")
        line, _ = wait_for(a, rb"\* \d+ FETCH")
        assert line == b"* 4 FETCH (UID 4)", line


def test_message_new_fetch_never_sets_seen(node):
    a, b = two(node)
    with a, b:
        a.ok("SELECT INBOX")
        a.ok("NOTIFY SET (SELECTED (MessageNew (UID BODY[HEADER.FIELDS (Subject)]) "
             "MessageExpunge))")
        append(b, "INBOX")
        line, _ = wait_for(a, rb"\* 1 FETCH ")
        assert b"Subject: notify" in line and b"FLAGS" not in line, line
        assert "\\Seen" not in a.fetch("1", "FLAGS")[1]["FLAGS"]


def test_message_new_fetch_emailid_and_savedate(node):
    """MessageNew (EMAILID SAVEDATE) gives what FETCH EMAILID SAVEDATE gives
    for the same message (RFC 8474 section 5.1, RFC 8514 section 4)."""
    a, b = two(node)
    with a, b:
        a.ok("SELECT INBOX")
        a.ok("NOTIFY SET (SELECTED (MessageNew (UID EMAILID SAVEDATE) MessageExpunge))")
        append(b, "INBOX")
        line, _ = wait_for(a, rb"\* 1 FETCH ")
        _, d = fetch_dict(line)
        b.ok("SELECT INBOX")
        want = b.fetch("1", "(UID EMAILID SAVEDATE)")[1]
        assert d == want, (line, want)
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,255}", str(d["EMAILID"][0])), d
        assert re.fullmatch(r"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}",
                            d["SAVEDATE"].decode()), d


def test_message_new_fetch_in_idle(node):
    a, b = two(node)
    with a, b:
        a.ok("SELECT INBOX")
        a.ok("NOTIFY SET (SELECTED (MessageNew (UID FLAGS) MessageExpunge))")
        a.send("I1 IDLE\r\n")
        assert a.response().startswith(b"+")
        append(b, "INBOX")
        wait_for(a, rb"\* 1 EXISTS")
        line, _ = wait_for(a, rb"\* 1 FETCH ")
        # \Recent: this session's view claimed it (RFC 3501 section 2.3.2)
        assert fetch_dict(line)[1] == {"UID": "1", "FLAGS": ["\\Recent"]}, line
        a.send("DONE\r\n")
        _, tagged = a.wait("I1")
        assert tagged.startswith("OK")


def test_overflow_when_the_client_does_not_read(make_ternd):
    """RFC 5465 section 6: notifications a client leaves unread stop with
    * OK [NOTIFICATIONOVERFLOW] (beyond 16 MiB unsent) instead of piling up;
    the session goes on."""
    node = imap_node(make_ternd, max_message_size="8M")
    big = (b"From: a@a.test\r\nSubject: big\r\n\r\n" + (b"y" * 76 + b"\r\n") * 50000)
    a, b = two(node)
    with a, b:
        a.ok("SELECT INBOX")
        a.ok("NOTIFY SET (SELECTED (MessageNew (BODY.PEEK[]) MessageExpunge))")
        # a reads nothing now: its FETCHes of ~4 MB each pile up
        for _ in range(12):
            _, t = b.cmd_literal("APPEND INBOX", big)
            assert t.startswith("OK"), t
        wait_for(a, rb"\* OK \[NOTIFICATIONOVERFLOW\]", timeout=60)
        # off now: a new message is only the NOOP's EXISTS, with no FETCH
        append(b, "INBOX")
        untagged = a.ok("NOOP", timeout=60)
        assert [r for r in untagged if r == b"* 13 EXISTS"], [r[:40] for r in untagged]
        assert not [r for r in untagged if b"FETCH" in r[:20]], [r[:40] for r in untagged]
        # and NOTIFY SET turns them on again
        a.ok("NOTIFY SET (SELECTED (MessageNew (UID) MessageExpunge))")
        append(b, "INBOX")
        line, _ = wait_for(a, rb"\* 14 FETCH ")
        assert line == b"* 14 FETCH (UID 14)", line


def test_status_option_reports_every_watched_mailbox(node):
    with Raw(node) as a:
        a.login()
        a.ok("CREATE Lists")
        a.ok("CREATE Lists/imap")
        a.ok("CREATE Other")
        append(a, "Lists/imap")
        a.ok("SELECT INBOX")
        # a mailbox that does not exist is no error, and has no STATUS
        untagged = a.ok("NOTIFY SET STATUS (SELECTED (MessageNew MessageExpunge)) "
                        "(SUBTREE Lists (MessageNew MessageExpunge)) "
                        "(MAILBOXES (NoSuchBox Other) NONE)")
        got = dict(status_items(r) for r in untagged if r.startswith(b"* STATUS"))
        assert set(got) == {"Lists", "Lists/imap"}, untagged
        assert got["Lists/imap"]["MESSAGES"] == 1
        assert got["Lists"]["MESSAGES"] == 0


def test_mailbox_name_events(node):
    a, b = two(node)
    with a, b:
        a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge MailboxName))")
        b.ok("CREATE Fresh")
        line, _ = wait_for(a, rb"\* LIST ")
        assert line == b'* LIST () "/" Fresh'
        b.ok("RENAME Fresh Renamed")
        line, _ = wait_for(a, rb"\* LIST ")
        assert line == b'* LIST () "/" Renamed ("OLDNAME" (Fresh))'
        b.ok("DELETE Renamed")
        line, _ = wait_for(a, rb"\* LIST ")
        assert line == b'* LIST (\\NonExistent) "/" Renamed'
        a.ok("NOOP")


def test_subscription_change(node):
    a, b = two(node)
    with a, b:
        b.ok("CREATE Lists")
        a.ok("NOTIFY SET (PERSONAL (SubscriptionChange))")
        b.ok("SUBSCRIBE Lists")
        line, _ = wait_for(a, rb"\* LIST ")
        assert line == b'* LIST (\\Subscribed) "/" Lists'
        b.ok("UNSUBSCRIBE Lists")
        line, _ = wait_for(a, rb"\* LIST ")
        assert line == b'* LIST () "/" Lists'


def test_rename_of_a_subscribed_mailbox_is_one_list(node):
    """RENAME carries the subscription: one LIST with OLDNAME says it all,
    not an unsubscription of the old name and a subscription of the new."""
    a, b = two(node)
    with a, b:
        b.ok("CREATE Fresh")
        b.ok("SUBSCRIBE Fresh")
        a.ok("NOTIFY SET (PERSONAL (MailboxName SubscriptionChange))")
        b.ok("RENAME Fresh Renamed")
        b.ok("CREATE Marker")
        line, _ = wait_for(a, rb"\* LIST ")
        assert line == b'* LIST (\\Subscribed) "/" Renamed ("OLDNAME" (Fresh))'
        line, seen = wait_for(a, rb'\* LIST \(\) "/" Marker')
        assert seen == [], seen


def test_mailboxes_filter_names_a_mailbox_created_later(node):
    a, b = two(node)
    with a, b:
        a.ok("NOTIFY SET (MAILBOXES (Later Lists) (MessageNew MessageExpunge MailboxName))")
        b.ok("CREATE Later")
        line, _ = wait_for(a, rb"\* LIST ")
        assert line == b'* LIST () "/" Later'
        append(b, "Later")
        line, _ = wait_for(a, rb"\* STATUS ")
        assert status_items(line)[0] == "Later"


def test_none_stops_notifications(node):
    a, b = two(node)
    with a, b:
        a.ok("CREATE Lists")
        a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
        a.ok("NOTIFY NONE")
        append(b)
        untagged = a.ok("NOOP")
        assert not [r for r in untagged if r.startswith(b"* STATUS")], untagged
        # ... and a new SET reports what changes after it
        a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
        append(b)
        line, _ = wait_for(a, rb"\* STATUS ")
        assert status_items(line)[1]["MESSAGES"] == 2


def test_status_after_a_command_in_progress(node):
    """A change during one of the session's own commands is reported after
    its tagged reply, not lost."""
    a, b = two(node)
    with a, b:
        a.ok("CREATE Lists")
        a.ok("NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
        append(a, "Lists")      # the session's own APPEND: reported after it
        line, _ = wait_for(a, rb"\* STATUS ")
        assert status_items(line)[1]["MESSAGES"] == 1


@pytest.mark.parametrize("args", [
    "SET (PERSONAL (MessageNew MessageExpunge AnnotationChange))",
    "SET (SELECTED (MessageNew MessageExpunge MailboxMetadataChange))",
    "SET (PERSONAL (ServerMetadataChange))",
    "SET (PERSONAL (NoSuchEvent))",
])
def test_unsupported_event_is_badevent(node, args):
    with Raw(node) as c:
        c.login()
        _, tagged = c.cmd("NOTIFY " + args)
        assert tagged.startswith("NO [BADEVENT ("), tagged
        assert "MessageNew" in tagged
        c.ok("NOOP")


@pytest.mark.parametrize("args", [
    "",
    "SET",
    "SET STATUS",
    "NONE extra",
    "GET (PERSONAL (MessageNew MessageExpunge))",
    "SET PERSONAL (MessageNew)",
    "SET (PERSONAL)",
    "SET (PERSONAL ())",
    "SET (PERSONAL MessageNew)",
    "SET (NOWHERE (MessageNew MessageExpunge))",
    "SET (SUBTREE (MessageNew MessageExpunge))",
    "SET (MAILBOXES () (MessageNew MessageExpunge))",
    "SET (PERSONAL (MessageNew))",
    "SET (PERSONAL (MessageExpunge))",
    "SET (PERSONAL (FlagChange))",
    "SET (PERSONAL (MessageNew (UID) MessageExpunge))",
    "SET (SELECTED (MessageNew ()) MessageExpunge)",
    "SET (SELECTED (MessageNew (NOSUCHATT) MessageExpunge))",
    "SET (SELECTED (MessageNew MessageExpunge)) (SELECTED-DELAYED (MessageNew MessageExpunge))",
    "SET (PERSONAL (MessageNew MessageExpunge AnnotationChange)) (PERSONAL)",
    "SET (SELECTED (MessageNew MessageExpunge MailboxName))",
])
def test_bad_syntax_is_bad(node, args):
    with Raw(node) as c:
        c.login()
        _, tagged = c.cmd(("NOTIFY " + args).rstrip())
        assert tagged.startswith("BAD"), tagged
        c.ok("NOOP")


def test_not_before_login(node):
    with Raw(node) as c:
        _, tagged = c.cmd("NOTIFY NONE")
        assert tagged.startswith("BAD"), tagged
