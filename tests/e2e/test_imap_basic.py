"""IMAP4rev1 (RFC 3501) commands end to end over a raw socket: greeting,
CAPABILITY, authentication (LOGIN, AUTHENTICATE PLAIN with and without SASL-IR),
SELECT/EXAMINE, mailbox management (CREATE, DELETE, RENAME incl. INBOX,
SUBSCRIBE, LIST, LSUB, STATUS), APPEND, CHECK, CLOSE, UNSELECT, EXPUNGE,
COPY/MOVE with UIDPLUS, NAMESPACE, ID, ENABLE, IDLE, LIST-EXTENDED,
LIST-STATUS, SPECIAL-USE, QUOTA and mailbox names (modified UTF-7, UTF-8,
names that try to leave the store)."""

import base64
import imaplib
import os
import re

import pytest

from imap_helpers import (Raw, capabilities, deliver, deliver_many, fetch_dict, imap_addr, imap_node,
                          login, parse_sexp, resp_code, status_of, untagged_matching)
from ternlib import IO_TIMEOUT, PASSWORD


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd)


def authed(node, user="alice"):
    return Raw(node).login(user)


def selected(node, folder="INBOX"):
    c = authed(node)
    c.select(folder)
    return c


def list_names(untagged, kind=b"LIST"):
    """{name: set(attributes)} from * LIST / * LSUB responses."""
    out = {}
    for r in untagged:
        if r.startswith(b"* " + kind + b" "):
            items = parse_sexp(r, len(b"* ") + len(kind) + 1)
            attrs, name = items[0], items[2]
            if isinstance(name, bytes):
                name = name.decode()
            out[str(name)] = {str(a).lower() for a in attrs}
    return out


# ------------------------------------------------------------ session basics

def test_greeting_capability_noop_logout(node):
    with Raw(node) as c:
        assert c.greeting.startswith(b"* OK"), c.greeting
        caps = capabilities(c.ok("CAPABILITY"))
        for cap in ("IMAP4REV1", "AUTH=PLAIN", "SASL-IR", "LITERAL-", "ID", "ENABLE"):
            assert cap in caps, caps
        # before login literals are capped at 4096 bytes: LITERAL-, not LITERAL+
        assert "LITERAL+" not in caps, caps
        assert "LOGINDISABLED" not in caps, "plain LOGIN is allowed from loopback"
        assert "STARTTLS" not in caps, "no STARTTLS without a TLS certificate"
        assert c.ok("NOOP") == []
        c.login()
        caps = capabilities(c.ok("CAPABILITY"))
        for cap in ("IMAP4REV1", "LITERAL+", "IDLE", "NAMESPACE", "ID", "ENABLE", "UIDPLUS",
                    "MOVE", "UNSELECT", "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS",
                    "CONDSTORE", "QRESYNC", "ESEARCH", "QUOTA", "CHILDREN"):
            assert cap in caps, f"{cap} missing from {sorted(caps)}"
        untagged, tagged = c.cmd("LOGOUT")
        assert untagged and untagged[0].startswith(b"* BYE"), untagged
        assert tagged.startswith("OK")
        c.expect_closed()


def test_login_variants(node):
    with Raw(node) as c:
        _, t = c.cmd('LOGIN alice "not the password"')
        assert t.startswith("NO"), t
        assert "[AUTHENTICATIONFAILED]" in t, t
        _, t = c.cmd(f'LOGIN nosuchuser "{PASSWORD}"')
        assert t.startswith("NO") and "[AUTHENTICATIONFAILED]" in t, t
        # literal password, any case of the command name
        c.cmd_literal("login alice", PASSWORD.encode())
        _, t = c.cmd("LOGIN alice x")
        assert t.startswith("BAD") or t.startswith("NO"), "LOGIN is not valid once authenticated"
    # imaplib as a client would use it
    m = login(node)
    assert m.state == "AUTH"
    m.logout()


def test_authenticate_plain_with_and_without_initial_response(node):
    cred = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
    with Raw(node) as c:
        untagged, t = c.cmd(f"AUTHENTICATE PLAIN {cred}")
        assert t.startswith("OK"), t
        c.ok("SELECT INBOX")
    with Raw(node) as c:
        tag = c.tag()
        c.send(f"{tag} AUTHENTICATE PLAIN\r\n")
        cont = c.response()
        assert cont.startswith(b"+"), cont
        c.send(cred + "\r\n")
        _, t = c.wait(tag)
        assert t.startswith("OK"), t
    with Raw(node) as c:
        # client cancels the exchange with "*": tagged BAD (RFC 3501 6.2.2)
        tag = c.tag()
        c.send(f"{tag} AUTHENTICATE PLAIN\r\n")
        assert c.response().startswith(b"+")
        c.send("*\r\n")
        _, t = c.wait(tag)
        assert t.startswith("BAD"), t
        # wrong password, then an authorization identity that is someone else
        bad = base64.b64encode(b"\0alice\0wrong").decode()
        _, t = c.cmd(f"AUTHENTICATE PLAIN {bad}")
        assert t.startswith("NO"), t
        other = base64.b64encode(f"bob\0alice\0{PASSWORD}".encode()).decode()
        _, t = c.cmd(f"AUTHENTICATE PLAIN {other}")
        assert t.startswith("NO"), "alice must not act as bob"
        _, t = c.cmd("AUTHENTICATE PLAIN !!!notbase64")
        assert t.startswith("BAD") or t.startswith("NO"), t
        _, t = c.cmd("AUTHENTICATE X-UNKNOWN")
        assert t.startswith("NO") or t.startswith("BAD"), t
        c.login()
    # imaplib's authenticate (no SASL-IR, continuation based)
    m = imaplib.IMAP4(*imap_addr(node), timeout=IO_TIMEOUT)
    typ, _ = m.authenticate("PLAIN", lambda _: f"\0alice\0{PASSWORD}".encode())
    assert typ == "OK"
    m.logout()


def test_commands_in_the_wrong_state(node):
    with Raw(node) as c:
        for cmd in ("SELECT INBOX", "LIST \"\" *", "CREATE x", "STATUS INBOX (MESSAGES)"):
            _, t = c.cmd(cmd)
            assert t.startswith("BAD") or t.startswith("NO"), f"{cmd} before login: {t}"
    with authed(node) as c:
        for cmd in ("FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL", "EXPUNGE",
                    "CLOSE", "UID FETCH 1 FLAGS", "COPY 1 Trash"):
            _, t = c.cmd(cmd)
            assert t.startswith("BAD") or t.startswith("NO"), f"{cmd} without a mailbox: {t}"
        c.ok("NOOP")


# ------------------------------------------------------------ SELECT / EXAMINE

def test_select_responses(node):
    deliver_many(node, 3)
    with authed(node) as c:
        untagged, t = c.cmd("SELECT INBOX")
        assert t.startswith("OK [READ-WRITE]"), t
        assert untagged_matching(untagged, rb"\* 3 EXISTS$"), untagged
        assert untagged_matching(untagged, rb"\* \d+ RECENT$"), untagged
        flags = untagged_matching(untagged, rb"\* FLAGS \(")
        assert flags, untagged
        for f in (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft"):
            assert f in flags[0], flags
        assert resp_code(untagged, "PERMANENTFLAGS") is not None
        assert "\\*" in resp_code(untagged, "PERMANENTFLAGS"), "keywords can be created"
        uidvalidity = int(resp_code(untagged, "UIDVALIDITY"))
        assert uidvalidity > 0
        assert int(resp_code(untagged, "UIDNEXT")) == 4
        assert resp_code(untagged, "UNSEEN") == "1", "first unseen message is 1"
        # STATUS agrees
        st = status_of(c.ok("STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)"))
        assert st["MESSAGES"] == 3 and st["UIDNEXT"] == 4 and st["UNSEEN"] == 3
        assert st["UIDVALIDITY"] == uidvalidity
        # EXAMINE is read-only: STORE refused, FETCH BODY[] does not set \Seen
        untagged, t = c.cmd("EXAMINE INBOX")
        assert t.startswith("OK [READ-ONLY]"), t
        # every write a read-only mailbox refuses says so alike (RFC 5530)
        for write in ("STORE 1 +FLAGS (\\Flagged)", "EXPUNGE", "UID EXPUNGE 1",
                      "MOVE 1 INBOX"):
            _, t = c.cmd(write)
            assert t.startswith("NO [READ-ONLY]"), (write, t)
        c.fetch("1", "BODY[]")
        c.select()
        flags = {str(f) for f in c.fetch("1", "FLAGS")[1]["FLAGS"]} - {"\\Recent"}
        assert flags == set(), "EXAMINE must not set \\Seen"
        # case-insensitive INBOX
        c.ok("SELECT inbox")
        c.ok("SELECT \"InBoX\"")


def test_recent_goes_to_one_session(node):
    """RFC 3501 2.3.2: \\Recent is reported to the first read-write session
    that sees a message, and to no other."""
    deliver_many(node, 2)
    with authed(node) as a, authed(node) as b:
        untagged = a.select()
        assert untagged_matching(untagged, rb"\* 2 RECENT$"), untagged
        assert a.search("RECENT") == [1, 2]
        untagged = b.select()
        assert untagged_matching(untagged, rb"\* 0 RECENT$"), untagged
        assert b.search("RECENT") == []
        deliver(node)
        for c in (a, b):
            assert untagged_matching(c.ok("NOOP"), rb"\* 3 EXISTS$")
        ra, rb_ = a.search("RECENT"), b.search("RECENT")
        assert sorted(ra + rb_) == [1, 2, 3], \
            f"each message is recent in exactly one session: a {ra}, b {rb_}"


def test_failed_select_leaves_no_mailbox_selected(node):
    deliver(node)
    with selected(node) as c:
        _, t = c.cmd("SELECT NoSuchFolder")
        assert t.startswith("NO"), t
        _, t = c.cmd("FETCH 1 FLAGS")
        assert t.startswith("BAD") or t.startswith("NO"), \
            "RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected"


# ------------------------------------------------------------ mailbox management

def test_create_list_delete(node):
    with authed(node) as c:
        c.ok("CREATE Work")
        c.ok("CREATE Work/Projects/Tern")   # intermediate level created as needed
        c.ok('CREATE "Trailing/"')          # RFC 3501: trailing separator ignored
        _, t = c.cmd("CREATE Work")
        assert t.startswith("NO"), t
        assert "[ALREADYEXISTS]" in t, t
        _, t = c.cmd("CREATE INBOX")
        assert t.startswith("NO"), t
        names = list_names(c.ok('LIST "" "*"'))
        assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Work", "Work/Projects",
                "Work/Projects/Tern", "Trailing"} <= set(names), names
        assert "Trailing/" not in names
        top = list_names(c.ok('LIST "" "%"'))
        assert "Work" in top and "Work/Projects" not in top, top
        assert set(list_names(c.ok('LIST "" "Work/%"'))) == {"Work/Projects"}
        assert set(list_names(c.ok('LIST "Work/" "%"'))) == {"Work/Projects"}
        assert set(list_names(c.ok('LIST "" "work"'))) == set(), "names other than INBOX are case-sensitive"
        assert set(list_names(c.ok('LIST "" "inbox"'))) == {"INBOX"}
        # The hierarchy delimiter
        root = [r for r in c.ok('LIST "" ""') if r.startswith(b"* LIST")]
        assert len(root) == 1 and b'"/"' in root[0] and b"\\noselect" in root[0].lower(), root
        # DELETE
        c.ok("CREATE Gone")
        c.ok("DELETE Gone")
        assert "Gone" not in list_names(c.ok('LIST "" "*"'))
        _, t = c.cmd("DELETE Gone")
        assert t.startswith("NO"), t
        _, t = c.cmd("DELETE INBOX")
        assert t.startswith("NO"), t
        c.ok("DELETE Work/Projects/Tern")
        names = list_names(c.ok('LIST "" "Work*"'))
        assert set(names) == {"Work", "Work/Projects"}, names
        # Deleting a parent either is refused or keeps its children (RFC 3501 6.3.4)
        _, t = c.cmd("DELETE Work")
        names = list_names(c.ok('LIST "" "Work*"'))
        assert "Work/Projects" in names, "children must survive DELETE of their parent"


def test_delete_removes_messages(node):
    with authed(node) as c:
        c.ok("CREATE Old")
        c.cmd_literal("APPEND Old", b"Subject: old\r\n\r\nold\r\n")
        c.ok("DELETE Old")
        c.ok("CREATE Old")
        assert status_of(c.ok("STATUS Old (MESSAGES)"))["MESSAGES"] == 0


def test_rename_keeps_messages_and_children(node):
    with authed(node) as c:
        c.ok("CREATE A/B")
        for folder in ("A", "A/B"):
            _, t = c.cmd_literal(f"APPEND {folder}", f"Subject: in {folder}\r\n\r\nx\r\n".encode())
            assert t.startswith("OK"), t
        c.ok("RENAME A Z")
        names = list_names(c.ok('LIST "" "*"'))
        assert "Z" in names and "Z/B" in names, names
        assert "A" not in names and "A/B" not in names, names
        assert status_of(c.ok("STATUS Z (MESSAGES)"))["MESSAGES"] == 1
        assert status_of(c.ok("STATUS Z/B (MESSAGES)"))["MESSAGES"] == 1
        c.ok("SELECT Z/B")
        hdr = c.fetch("1", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]")[1]
        assert b"Subject: in A/B" in next(v for k, v in hdr.items() if k.startswith("BODY["))
        c.ok("UNSELECT")
        _, t = c.cmd("RENAME Z Sent")
        assert t.startswith("NO"), "renaming onto an existing name must fail"
        _, t = c.cmd("RENAME NoSuch Other")
        assert t.startswith("NO"), t


def test_rename_inbox_moves_messages_and_keeps_an_empty_inbox(node):
    subjects = deliver_many(node, 2)
    with authed(node) as c:
        c.ok("RENAME INBOX Archive/2024")
        assert status_of(c.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 0
        assert status_of(c.ok("STATUS Archive/2024 (MESSAGES)"))["MESSAGES"] == 2
    assert sorted(node.subjects("alice", "Archive/2024")) == sorted(subjects)
    assert node.subjects("alice", "INBOX") == []
    deliver(node)
    assert len(node.subjects("alice", "INBOX")) == 1, "INBOX still receives mail"


def test_subscribe_lsub(node):
    with authed(node) as c:
        c.ok("CREATE Lists/tern")
        c.ok("SUBSCRIBE Lists/tern")
        lsub = list_names(c.ok('LSUB "" "*"'), b"LSUB")
        assert "Lists/tern" in lsub, lsub
        subscribed = list_names(c.ok('LIST (SUBSCRIBED) "" "*"'))
        assert "Lists/tern" in subscribed and "\\subscribed" in subscribed["Lists/tern"]
        everything = list_names(c.ok('LIST "" "*" RETURN (SUBSCRIBED)'))
        assert "\\subscribed" in everything["Lists/tern"], everything
        assert "Lists" in everything and "\\subscribed" not in everything["Lists"], everything
        c.ok("UNSUBSCRIBE Lists/tern")
        assert "Lists/tern" not in list_names(c.ok('LSUB "" "*"'), b"LSUB")
        everything = list_names(c.ok('LIST "" "*" RETURN (SUBSCRIBED)'))
        assert "\\subscribed" not in everything["Lists/tern"], everything
        assert "Lists/tern" in list_names(c.ok('LIST "" "*"')), "UNSUBSCRIBE keeps the folder"
        # LSUB "%" with a subscribed child of an unsubscribed parent: parent \Noselect
        c.ok("SUBSCRIBE Lists/tern")
        # RFC 3501 6.3.9: "%" must return the unsubscribed parent, \Noselect
        lsub = list_names(c.ok('LSUB "" "%"'), b"LSUB")
        assert "Lists" in lsub and "\\noselect" in lsub["Lists"], lsub
        assert "Lists/tern" not in lsub, lsub


def test_status(node):
    deliver_many(node, 2)
    with authed(node) as c:
        st = status_of(c.ok("STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"))
        assert st["MESSAGES"] == 2 and st["UNSEEN"] == 2 and st["UIDNEXT"] == 3
        assert set(st) == {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN"}
        _, t = c.cmd("STATUS NoSuch (MESSAGES)")
        assert t.startswith("NO"), t
        _, t = c.cmd("STATUS INBOX (BOGUS)")
        assert t.startswith("BAD"), t


# ------------------------------------------------------------ APPEND

def test_append_flags_date_appenduid(node):
    msg = b"From: a@b.test\r\nSubject: appended\r\n\r\nbody\r\n"
    with authed(node) as c:
        uidvalidity = status_of(c.ok("STATUS Drafts (UIDVALIDITY)"))["UIDVALIDITY"]
        _, t = c.cmd_literal('APPEND Drafts (\\Draft \\Seen $Custom) "05-Mar-2021 14:07:09 +0100"', msg)
        m = re.match(r"OK \[APPENDUID (\d+) (\d+)\]", t)
        assert m, t
        assert int(m.group(1)) == uidvalidity
        uid = int(m.group(2))
        c.ok("SELECT Drafts")
        d = c.fetch(f"{uid}", "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])", uid=True)
        d = next(iter(d.values()))
        assert {str(f) for f in d["FLAGS"]} - {"\\Recent"} == {"\\Draft", "\\Seen", "$Custom"}
        assert d["INTERNALDATE"] == b"05-Mar-2021 14:07:09 +0100"
        assert int(d["RFC822.SIZE"]) == len(msg)
        assert d["BODY[]"] == msg
    assert node.find("alice", "Drafts", "appended") == msg


def test_append_literal_plus_and_errors(node):
    msg = b"Subject: nonsync\r\n\r\nx\r\n"
    with authed(node) as c:
        _, t = c.cmd_literal("APPEND INBOX", msg, plus=True)
        assert t.startswith("OK"), t
        _, t = c.cmd_literal("APPEND NoSuchFolder", msg)
        assert t.startswith("NO [TRYCREATE]"), t
        _, t = c.cmd_literal("APPEND INBOX (\\Recent)", msg)
        assert t.startswith("BAD") or t.startswith("NO"), "\\Recent cannot be set by APPEND"
        _, t = c.cmd_literal('APPEND INBOX "31-Feb-2021 99:00:00 +0000"', msg)
        assert t.startswith("BAD"), t
        c.ok("NOOP")
    assert node.subjects("alice") == ["nonsync"]


def test_append_to_the_selected_folder_reports_exists(node):
    with selected(node) as c:
        untagged, t = c.cmd_literal("APPEND INBOX", b"Subject: s\r\n\r\nx\r\n")
        assert t.startswith("OK"), t
        untagged += c.ok("NOOP")
        assert untagged_matching(untagged, rb"\* 1 EXISTS$"), untagged


def test_append_too_big_is_refused(make_ternd):
    node = imap_node(make_ternd, max_message_size="10k")
    with authed(node) as c:
        _, t = c.cmd_literal("APPEND INBOX", b"x" * 20000)
        assert t.startswith("NO") and "[TOOBIG]" in t or t.startswith("BAD"), t
        c.ok("NOOP")
    assert node.subjects("alice") == []


# ------------------------------------------------------------ STORE

def _store_flags(untagged, seq):
    """The FLAGS in the one '* seq FETCH' response, without \\Recent; None if none."""
    rs = [r for r in untagged if re.match(rb"\* %d FETCH " % seq, r)]
    if not rs:
        return None
    assert len(rs) == 1, untagged
    _, d = fetch_dict(rs[0])
    return {str(f) for f in d["FLAGS"]} - {"\\Recent"}


def test_store(node):
    deliver_many(node, 3)
    with selected(node) as c:
        assert _store_flags(c.ok("STORE 1 +FLAGS (\\Seen \\Flagged)"), 1) == {"\\Seen", "\\Flagged"}
        assert _store_flags(c.ok("STORE 1 -FLAGS (\\Flagged)"), 1) == {"\\Seen"}
        untagged = c.ok("STORE 1:2 FLAGS ($Label1 \\Answered)")
        assert _store_flags(untagged, 1) == _store_flags(untagged, 2) == {"$Label1", "\\Answered"}
        assert _store_flags(c.ok("STORE 1 +FLAGS.SILENT (\\Draft)"), 1) is None, ".SILENT"
        # a flag list without parentheses is valid too (RFC 3501 store-att-flags)
        assert _store_flags(c.ok("STORE 3 +FLAGS \\Seen $Two"), 3) == {"\\Seen", "$Two"}
        untagged = c.ok("UID STORE 3 -FLAGS ($Two)")
        rs = untagged_matching(untagged, rb"\* 3 FETCH ")
        assert rs and int(fetch_dict(rs[0])[1]["UID"]) == 3, "UID STORE answers carry the UID"
        _, t = c.cmd("STORE 2 +FLAGS (\\Recent)")
        assert t.startswith("BAD") or t.startswith("NO"), "\\Recent cannot be stored"
        _, t = c.cmd("STORE 2 FROBS (\\Seen)")
        assert t.startswith("BAD"), t
    with selected(node) as fresh:
        d = fresh.fetch("1:3", "FLAGS")
        got = {k: {str(f) for f in v["FLAGS"]} - {"\\Recent"} for k, v in d.items()}
        assert got == {1: {"$Label1", "\\Answered", "\\Draft"}, 2: {"$Label1", "\\Answered"},
                       3: {"\\Seen"}}, "flags are stored"



def _flags_lists(untagged):
    """(FLAGS list, PERMANENTFLAGS list) from the last such responses, or None."""
    flags = perm = None
    for r in untagged:
        m = re.match(rb"\* FLAGS \(([^)]*)\)", r)
        if m:
            flags = set(m.group(1).decode().split())
        m = re.match(rb"\* OK \[PERMANENTFLAGS \(([^)]*)\)\]", r)
        if m:
            perm = set(m.group(1).decode().split())
    return flags, perm


def test_new_keywords_are_announced_in_flags(node):
    """RFC 3501 §7.2.6: a client learns of a new keyword from an untagged FLAGS
    before any FETCH shows it, in the session that set it and in others."""
    deliver_many(node, 2)
    with selected(node) as a, selected(node) as b:
        flags, perm = _flags_lists(a.ok("NOOP"))
        assert flags is None, "nothing new, no FLAGS"
        untagged = a.ok("STORE 1 +FLAGS ($Work)")
        flags, perm = _flags_lists(untagged)
        assert flags is not None and "$Work" in flags, untagged
        assert perm is not None and {"$Work", "\\*"} <= perm, untagged
        order = [i for i, r in enumerate(untagged) if r.startswith(b"* FLAGS") or b" FETCH " in r]
        assert untagged[order[0]].startswith(b"* FLAGS"), "FLAGS comes before the FETCH"
        untagged = b.ok("NOOP")
        flags, _ = _flags_lists(untagged)
        assert flags is not None and "$Work" in flags, untagged
        assert _store_flags(untagged, 1) == {"$Work"}, untagged
        # a keyword already known is not announced again
        flags, _ = _flags_lists(b.ok("STORE 2 +FLAGS ($work)"))
        assert flags is None, "keywords compare case-insensitively"
    with authed(node) as fresh:
        flags, perm = _flags_lists(fresh.select())
        assert {"$Work", "\\Seen"} <= flags and {"$Work", "\\*"} <= perm, (flags, perm)


# ------------------------------------------------------------ CHECK CLOSE EXPUNGE UNSELECT

def _mark_deleted(c, seqs):
    c.ok(f"STORE {seqs} +FLAGS.SILENT (\\Deleted)")


def test_expunge_reports_correct_sequence_numbers(node):
    subjects = deliver_many(node, 5)
    with selected(node) as c:
        c.ok("CHECK")
        _mark_deleted(c, "2,4")
        untagged = c.ok("EXPUNGE")
        seqs = [int(r.split()[1]) for r in untagged_matching(untagged, rb"\* \d+ EXPUNGE$")]
        # Replay the EXPUNGEs on the client's list: the survivors are 1, 3, 5.
        view = list(range(1, 6))
        for s in seqs:
            del view[s - 1]
        assert view == [1, 3, 5], f"EXPUNGE responses {seqs} do not remove messages 2 and 4"
        d = c.fetch("1:*", "UID")
        assert [int(d[i]["UID"]) for i in sorted(d)] == [1, 3, 5]
    assert node.subjects("alice") == [subjects[0], subjects[2], subjects[4]]


def test_uid_expunge_only_touches_given_uids(node):
    deliver_many(node, 3)
    with selected(node) as c:
        _mark_deleted(c, "1:3")
        untagged = c.ok("UID EXPUNGE 2")
        assert untagged_matching(untagged, rb"\* 2 EXPUNGE$"), untagged
        d = c.fetch("1:*", "(UID FLAGS)")
        assert [int(d[i]["UID"]) for i in sorted(d)] == [1, 3]


def test_close_expunges_silently_unselect_does_not(node):
    deliver_many(node, 3)
    with selected(node) as c:
        _mark_deleted(c, "1")
        untagged = c.ok("UNSELECT")
        assert not untagged_matching(untagged, rb"\* \d+ EXPUNGE"), untagged
        _, t = c.cmd("FETCH 1 FLAGS")
        assert t.startswith("BAD") or t.startswith("NO"), "no mailbox after UNSELECT"
        st = status_of(c.ok("STATUS INBOX (MESSAGES)"))
        assert st["MESSAGES"] == 3
        # EXAMINE + CLOSE does not expunge either
        c.ok("EXAMINE INBOX")
        c.ok("CLOSE")
        assert status_of(c.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 3
        c.select()
        untagged = c.ok("CLOSE")
        assert not untagged_matching(untagged, rb"\* \d+ EXPUNGE"), "CLOSE sends no EXPUNGE"
        assert status_of(c.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 2


# ------------------------------------------------------------ COPY / MOVE

def test_copy_with_copyuid(node):
    subjects = deliver_many(node, 3)
    with selected(node) as c:
        c.ok("STORE 2 +FLAGS.SILENT (\\Flagged kw1)")
        tv = status_of(c.ok("STATUS Trash (UIDVALIDITY)"))["UIDVALIDITY"]
        _, t = c.cmd("COPY 2:3 Trash")
        m = re.match(r"OK \[COPYUID (\d+) (\S+) (\S+)\]", t)
        assert m, t
        assert int(m.group(1)) == tv and m.group(2) in ("2:3", "2,3"), t
        assert m.group(3) in ("1:2", "1,2"), t
        _, t = c.cmd("UID COPY 1 NoSuch")
        assert t.startswith("NO [TRYCREATE]"), t
        _, t = c.cmd("COPY 99 Trash")
        assert t.startswith("BAD") or t.startswith("NO"), t
        assert status_of(c.ok("STATUS INBOX (MESSAGES)"))["MESSAGES"] == 3
        c.ok("EXAMINE Trash")
        d = c.fetch("1", "FLAGS")
        assert {str(f) for f in d[1]["FLAGS"]} - {"\\Recent"} == {"\\Flagged", "kw1"}, \
            "COPY keeps flags"
    assert node.subjects("alice", "Trash") == subjects[1:]


def test_move(node):
    subjects = deliver_many(node, 3)
    with selected(node) as c:
        untagged, t = c.cmd("MOVE 1:2 Junk")
        assert t.startswith("OK"), t
        # COPYUID comes in an untagged OK, before the EXPUNGEs (RFC 6851 4.3)
        idx = [i for i, r in enumerate(untagged)
               if re.match(rb"\* OK \[COPYUID \d+ (1:2|1,2) (1:2|1,2)\]", r)]
        exp = [i for i, r in enumerate(untagged) if re.match(rb"\* \d+ EXPUNGE", r)]
        assert idx and len(exp) == 2 and idx[0] < exp[0], untagged
        d = c.fetch("1:*", "UID")
        assert list(d) == [1] and int(d[1]["UID"]) == 3
        untagged = c.ok("UID MOVE 3 Trash")
        assert untagged_matching(untagged, rb"\* 1 EXPUNGE"), untagged
    assert node.subjects("alice", "Junk") == subjects[:2]
    assert node.subjects("alice", "Trash") == subjects[2:]
    assert node.subjects("alice") == []


# ------------------------------------------------------------ small extensions

def test_namespace_id_enable(node):
    with authed(node) as c:
        ns = untagged_matching(c.ok("NAMESPACE"), rb"\* NAMESPACE ")
        assert ns, "no NAMESPACE response"
        items = parse_sexp(ns[0], len(b"* NAMESPACE "))
        assert items[0] == [[b"", b"/"]], items
        ids = untagged_matching(c.ok('ID ("name" "e2e" "version" "1")'), rb"\* ID ")
        assert ids, "ID must answer with * ID"
        enabled = untagged_matching(c.ok("ENABLE CONDSTORE"), rb"\* ENABLED")
        assert enabled and b"CONDSTORE" in enabled[0].upper(), enabled
        # unknown capabilities are ignored, not an error (RFC 5161)
        untagged = c.ok("ENABLE X-NOT-A-THING")
        assert all(b"X-NOT-A-THING" not in r for r in untagged)
    with Raw(node) as c:
        _, t = c.cmd("ENABLE CONDSTORE")
        assert t.startswith("BAD") or t.startswith("NO"), "ENABLE before login"
        assert untagged_matching(c.ok("ID NIL"), rb"\* ID ")


def test_idle_done(node):
    with selected(node) as c:
        tag = c.tag()
        c.send(f"{tag} IDLE\r\n")
        assert c.response().startswith(b"+"), "IDLE continuation"
        deliver(node)
        r = c.response()
        assert re.match(rb"\* 1 EXISTS", r) or re.match(rb"\* 1 RECENT", r), r
        c.send("DONE\r\n")
        _, t = c.wait(tag)
        assert t.startswith("OK"), t
        c.ok("NOOP")


def test_idle_session_of_a_deleted_user_gets_bye(node):
    """An IDLE session gives its store back while it waits; if the user is
    deleted meanwhile it cannot have it again and says so, instead of
    serving a mailbox that no longer exists."""
    with selected(node) as c:
        deliver(node)
        c.ok("NOOP")
        tag = c.tag()
        c.send(f"{tag} IDLE\r\n")
        assert c.response().startswith(b"+"), "IDLE continuation"
        node.ctl("user", "del", "alice")
        c.send("DONE\r\n")
        rest = c.expect_closed()
        assert b"* BYE [UNAVAILABLE]" in rest, rest


def test_list_extended_special_use_children_status(node):
    with authed(node) as c:
        c.ok("CREATE Parent/Child")
        names = list_names(c.ok('LIST "" "*" RETURN (SPECIAL-USE)'))
        assert "\\sent" in names["Sent"] and "\\drafts" in names["Drafts"]
        assert "\\trash" in names["Trash"] and "\\junk" in names["Junk"]
        only = list_names(c.ok('LIST (SPECIAL-USE) "" "*"'))
        assert set(only) == {"Sent", "Drafts", "Trash", "Junk"}, only
        ch = list_names(c.ok('LIST "" "*" RETURN (CHILDREN)'))
        assert "\\haschildren" in ch["Parent"], ch
        assert "\\hasnochildren" in ch["Parent/Child"], ch
        # LIST-STATUS (RFC 5819): a STATUS response for each listed mailbox
        deliver_many(node, 2)
        untagged = c.ok('LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN))')
        statuses = {}
        for r in untagged:
            if r.startswith(b"* STATUS "):
                items = parse_sexp(r, len(b"* STATUS "))
                name = items[0].decode() if isinstance(items[0], bytes) else str(items[0])
                lst = items[1]
                statuses[name] = {str(lst[i]).upper(): int(lst[i + 1]) for i in range(0, len(lst), 2)}
        assert statuses.get("INBOX") == {"MESSAGES": 2, "UNSEEN": 2}, untagged
        assert statuses.get("Sent") == {"MESSAGES": 0, "UNSEEN": 0}, untagged
        # Multiple patterns (LIST-EXTENDED)
        assert set(list_names(c.ok('LIST "" ("Sent" "Junk")'))) == {"Sent", "Junk"}
        # CREATE with USE (RFC 6154) is optional; SPECIAL-USE of new folders not required.


def test_quota_reporting(node):
    node.ctl("user", "quota", "alice", "1M")
    deliver(node, body="x" * 5000 + "\r\n")
    total = len(node.cat("alice", "INBOX", node.messages("alice")[0]["uid"]))
    with authed(node) as c:
        untagged = c.ok("GETQUOTAROOT INBOX")
        roots = untagged_matching(untagged, rb"\* QUOTAROOT ")
        assert roots, untagged
        items = parse_sexp(roots[0], len(b"* QUOTAROOT "))
        assert items[0] in (b"INBOX", "INBOX"), items
        assert len(items) >= 2, "INBOX must have a quota root"
        quotas = untagged_matching(untagged, rb"\* QUOTA ")
        assert quotas, untagged
        q = parse_sexp(quotas[0], len(b"* QUOTA "))
        res = q[1]
        assert str(res[0]).upper() == "STORAGE", q
        used, limit = int(res[1]), int(res[2])
        assert limit == 1024, f"1M quota is 1024 units of 1024 octets, got {limit}"
        assert total // 1024 <= used <= (total + 1023) // 1024, (used, total)
        root = items[1].decode() if isinstance(items[1], bytes) else str(items[1])
        again = untagged_matching(c.ok(f'GETQUOTA "{root}"'), rb"\* QUOTA ")
        assert again and b"STORAGE" in again[0].upper()
        _, t = c.cmd(f'SETQUOTA "{root}" (STORAGE 99999)')
        assert t.startswith("NO") or t.startswith("BAD"), "quota is set by the administrator"


def test_quota_is_enforced_on_append(node):
    node.ctl("user", "quota", "alice", "20K")
    with authed(node) as c:
        _, t = c.cmd_literal("APPEND INBOX", b"Subject: big\r\n\r\n" + b"y" * 30000 + b"\r\n")
        assert t.startswith("NO") and "[OVERQUOTA]" in t, t
        _, t = c.cmd_literal("APPEND INBOX", b"Subject: small\r\n\r\nsmall\r\n")
        assert t.startswith("OK"), t
    assert node.subjects("alice") == ["small"]


# ------------------------------------------------------------ mailbox names

def _folders(node, user="alice"):
    folders = node.ctl("mailbox", "folders", user, as_json=True)
    if isinstance(folders, dict):
        folders = next(v for v in folders.values() if isinstance(v, list))
    return {f["name"] for f in folders}


def test_modified_utf7_names(node):
    with authed(node) as c:
        c.ok('CREATE "Entw&APw-rfe"')
        c.ok('CREATE "&ZeVnLIqe-/Sub"')        # 日本語/Sub
        names = list_names(c.ok('LIST "" "*"'))
        assert "Entw&APw-rfe" in names and "&ZeVnLIqe-/Sub" in names, names
        for bad in ('"&Jjo"', '"Bad&"', '"&AGE-"'):   # unterminated, bare &, encodes ASCII
            _, t = c.cmd(f"CREATE {bad}")
            assert t.startswith("NO") or t.startswith("BAD"), f"CREATE {bad}: {t}"
        c.ok('SELECT "Entw&APw-rfe"')
    assert {"Entwürfe", "日本語/Sub"} <= _folders(node)


def test_utf8_names_after_enable(node):
    with authed(node) as c:
        _, t = c.cmd('CREATE "Gr\xc3\xbc\xc3\x9fe"'.encode("latin-1"))
        assert t.startswith("NO") or t.startswith("BAD"), "8-bit name without UTF8=ACCEPT"
        c.ok('CREATE "Entw&APw-rfe"')
        enabled = untagged_matching(c.ok("ENABLE UTF8=ACCEPT"), rb"\* ENABLED")
        assert enabled and b"UTF8=ACCEPT" in enabled[0].upper(), enabled
        c.ok('CREATE "Grüße"'.encode())
        names = list_names(c.ok('LIST "" "*"'))
        assert "Grüße" in names and "Entwürfe" in names, names
        c.ok('SELECT "Entwürfe"'.encode())
    assert {"Grüße", "Entwürfe"} <= _folders(node)


def _tree(root):
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), root))
    return out


def test_names_cannot_escape_the_store(node, tmp_path):
    outside_before = {p for p in _tree(str(tmp_path)) if not p.startswith("node1/data")}
    hostile = ['"../x"', '"a/../../b"', '"/abs"', '"../../../../tmp/tern-escape"', '"a//b"',
               '"./dot"', '".."', '"."', '"a/./b"']
    with authed(node) as c:
        for name in hostile:
            c.cmd(f"CREATE {name}")
            c.cmd_literal(f"APPEND {name}", b"Subject: escape\r\n\r\nx\r\n")
            c.cmd(f"RENAME {name} \"../renamed\"")
        c.ok("NOOP")
        names = list_names(c.ok('LIST "" "*"'))
    outside_after = {p for p in _tree(str(tmp_path)) if not p.startswith("node1/data")}
    new = {p for p in outside_after - outside_before if not re.match(r"node1/ternd-\d+\.stderr$", p)}
    assert new == set(), f"files appeared outside data_dir: {new}"
    assert not os.path.exists("/tmp/tern-escape")
    for n in names:
        assert not n.startswith("/") and ".." not in n.split("/"), f"LIST shows {n!r}"
