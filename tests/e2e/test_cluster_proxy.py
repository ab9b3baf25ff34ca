"""The cluster end to end (issue 9): three ternd nodes on loopback share one
directory; any node serves any user, proxying IMAP and POP3 sessions and
relaying LMTP deliveries to the user's home node over the authenticated
node-to-node channel. What a client sees through a front node is checked
against what the home node's `ternctl mailbox` shows (counts, bytes,
flags). Then the failures: a home node stopped, hung or SIGKILLed while
sessions are proxied and deliveries relayed, a node with the wrong cluster
secret, and bad input on the cluster port."""

import base64
import glob
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

from cluster_helpers import (CLUSTER_PROTOCOL, CLUSTER_TIMEOUT, DEFAULT_USERS, FRAME_AUTH,
                             FRAME_CHALLENGE, FRAME_ERROR, FRAME_HELLO, FRAME_OPEN, FRAME_OPENED,
                             FRAME_READY, NODE_NAMES, SENDER, SLACK, DeflateImap, Pop3,
                             cert_der, client_context, cluster_factory, frame, frame_types,
                             imap_over, make_cert)
from imap_helpers import Raw, fetch_dict, resp_code
from mbsync_config import write_mbsync_rc
from ternlib import (CMD_TIMEOUT, IO_TIMEOUT, PASSWORD, LmtpConn, dot_stuff, free_port,
                     make_message, normalize_eol, unique_subject, wait_for)

# The deadline every failure must be answered within.
FAIL_DEADLINE = CLUSTER_TIMEOUT + SLACK
# How long a front may take to notice that a node came back.
RECOVERY_TIMEOUT = 15.0
USER_ON = {home: user for user, home in DEFAULT_USERS.items()}
PAIRS = [(front, home) for front in NODE_NAMES for home in NODE_NAMES if front != home]
PAIR_IDS = [f"{front}-serves-{home}" for front, home in PAIRS]


@pytest.fixture
def make_cluster(tmp_path):
    """make_cluster(**options) -> a started Cluster (cluster_helpers)."""
    yield from cluster_factory(tmp_path)


def proxy_line(user, front, home, proto):
    return (rf"proxy: user=<{re.escape(user)}> front={re.escape(front)} home={re.escape(home)} "
            rf"proto={proto} rip=127\.0\.0\.1")


def imap_login(cl, front, user):
    """A Raw IMAP session at `front`, logged in (tagged OK required)."""
    c = Raw(cl.imap_addr(front))
    _, tagged = c.cmd(f'LOGIN {user} "{PASSWORD}"')
    if not tagged.startswith("OK"):
        c.close()
        raise AssertionError(f"LOGIN {user} at {front} (home {cl.homes[user]}): expected OK, "
                             f"got {tagged!r}")
    return c


def timed_imap_login(cl, front, user):
    """(tagged reply of LOGIN, seconds it took)."""
    with Raw(cl.imap_addr(front)) as c:
        t0 = time.monotonic()
        _, tagged = c.cmd(f'LOGIN {user} "{PASSWORD}"')
        return tagged, time.monotonic() - t0


def timed_pop3_login(cl, front, user):
    """(PASS reply, seconds USER+PASS took)."""
    with Pop3(cl.pop3_addr(front)) as p:
        t0 = time.monotonic()
        reply = p.login(user)
        return reply, time.monotonic() - t0


def lmtp_transaction(conn, rcpts, msg):
    """MAIL, RCPT each, DATA on an open LMTP connection. Returns ({rcpt: its
    final Reply (RCPT's when refused there, else its DATA reply)}, the
    longest any single reply took)."""
    slowest = 0.0
    conn.expect(f"MAIL FROM:<{SENDER}>", 250)
    final, accepted = {}, []
    for r in rcpts:
        t0 = time.monotonic()
        reply = conn.cmd(f"RCPT TO:<{r}>")
        slowest = max(slowest, time.monotonic() - t0)
        if reply.code == 250:
            accepted.append(r)
        else:
            final[r] = reply
    if accepted:
        r = conn.cmd("DATA")
        assert r.code == 354, f"DATA: expected 354, got {r!r}"
        t0 = time.monotonic()
        conn.send(dot_stuff(msg) + b".\r\n")
        for rcpt in accepted:
            final[rcpt] = conn.reply()
        slowest = max(slowest, time.monotonic() - t0)
    else:
        conn.expect("RSET", 250)
    return final, slowest


def deliver_through(cl, front, rcpts, msg):
    with LmtpConn(cl.lmtp_addr(front)) as c:
        c.lhlo()
        return lmtp_transaction(c, rcpts, msg)


def assert_451_441(reply, rcpt):
    assert reply.code == 451 and reply.enhanced() == "4.4.1", \
        f"<{rcpt}> with its home node unreachable: expected 451 4.4.1, got {reply!r}"


def assert_relayed_copy(cl, user, subject, msg, reply=None):
    """The one stored copy in user's INBOX on its home node is the message
    as sent, with the home's Return-Path and Delivered-To on top; when the
    DATA reply is given, it is the home node's own (it names the UID the
    home gave the message)."""
    uid, _, raw = cl.find(user, subject)
    assert raw.endswith(msg), f"{user}'s stored copy differs from what was sent: {raw[:300]!r}"
    added = raw[:-len(msg)]
    assert f"Return-Path: <{SENDER}>\r\n".encode() in added, added
    assert re.search(rb"(?im)^Delivered-To: .*\b" + user.encode() + rb"@example\.org", added), added
    if reply is not None:
        assert re.match(rf"250 2\.0\.0 <{user}@example\.org> {uid}\b", reply.lines[-1]), \
            f"DATA reply for {user}: expected the home node's '250 2.0.0 <...> {uid} Saved', got {reply!r}"
    return uid, raw


# ------------------------------------------------------------------ the harness

def test_nodes_share_one_directory_and_serve_their_own_users(make_cluster):
    """What works without the proxy: three nodes register in the one
    directory, `ternctl node list` on any node shows all three with their
    addresses, users are homed on each, and each home serves its own user
    over LMTP, IMAP and POP3."""
    cl = make_cluster()
    for name in NODE_NAMES:
        rows = {r["name"]: r for r in cl[name].ctl("node", "list", as_json=True)}
        assert set(rows) == set(NODE_NAMES), rows
        for other in NODE_NAMES:
            s = cl[other].settings
            assert rows[other]["lmtp"] == s["lmtp_listen"], rows[other]
            assert rows[other]["imap"] == s["imap_listen"], rows[other]
            assert rows[other]["pop3"] == s["pop3_listen"], rows[other]
        users = {u["name"]: u["home"] for u in cl[name].ctl("user", "list", as_json=True)}
        assert users == DEFAULT_USERS
    for user, home in DEFAULT_USERS.items():
        subject, raw = cl.deliver_at_home(user)
        with imap_login(cl, home, user) as c:
            assert b"* 1 EXISTS" in c.select()
            got = c.fetch("1", "(BODY.PEEK[])")
            assert got[1]["BODY[]"] == raw
            c.ok("LOGOUT")
        with Pop3(cl.pop3_addr(home)) as p:
            assert p.login(user).startswith("+OK")
            assert p.ok("STAT").split()[1:3] == ["1", str(len(raw))]
            p.ok("QUIT")


# ------------------------------------------------------------------ LMTP

@pytest.mark.parametrize("front", NODE_NAMES)
def test_lmtp_mixed_recipients_through_front(make_cluster, front):
    """One transaction at `front`: a local user, users homed on both other
    nodes and an unknown one. RCPT: 250 for the three users (the remote
    ones checked against the directory), 550 5.1.1 for the unknown; after
    DATA one reply per accepted recipient, in order, each the home node's
    own answer; one copy on each home."""
    cl = make_cluster()
    local = USER_ON[front]
    remote = [USER_ON[n] for n in cl.others(front)]
    users = [local, remote[0], remote[1]]
    rcpts = [f"{local}@example.org", f"{remote[0]}@example.org", "nobody@example.org",
             f"{remote[1]}@example.org"]
    before = {u: cl.folders(u)["INBOX"] for u in users}
    subject = unique_subject("mixed")
    msg = make_message(subject, to=", ".join(rcpts),
                       body="Line one.\r\n.A line that starts with a dot.\r\n\r\nGr\xfc\xdfe.\r\n")
    with LmtpConn(cl.lmtp_addr(front)) as c:
        c.lhlo()
        rcpt_replies, data_replies = c.deliver(SENDER, rcpts, msg)
    assert [r.code for r in rcpt_replies] == [250, 250, 550, 250], rcpt_replies
    assert rcpt_replies[2].enhanced() == "5.1.1", rcpt_replies[2]
    assert len(data_replies) == 3, data_replies
    for user, reply in zip(users, data_replies):
        _, raw = assert_relayed_copy(cl, user, subject, msg, reply)
        after = cl.folders(user)["INBOX"]
        assert after["messages"] == before[user]["messages"] + 1
        assert after["size"] == before[user]["size"] + len(raw)
        assert after["unseen"] == before[user]["unseen"] + 1


# ------------------------------------------------------------------ IMAP

@pytest.mark.parametrize("front,home", PAIRS, ids=PAIR_IDS)
def test_imap_session_through_front(make_cluster, front, home):
    """LOGIN at `front` for a user homed on `home`, then SELECT (CONDSTORE),
    FETCH bodies byte for byte, STORE, APPEND, MOVE and LOGOUT exactly as
    on the home node: every change is what the home's ternctl shows."""
    cl = make_cluster()
    user = USER_ON[home]
    s1, raw1 = cl.deliver_at_home(user)
    s2, raw2 = cl.deliver_at_home(user, body="Second.\r\n.dot\r\nGr\xfc\xdfe\r\n")
    c = imap_login(cl, front, user)
    with c:
        folders = cl.folders(user)
        sel = c.select("INBOX", " (CONDSTORE)")
        assert b"* 2 EXISTS" in sel, sel
        assert resp_code(sel, "UIDVALIDITY") == str(folders["INBOX"]["uidvalidity"]), sel
        assert resp_code(sel, "HIGHESTMODSEQ") == str(folders["INBOX"]["highestmodseq"]), sel
        assert resp_code(sel, "UIDNEXT") == str(folders["INBOX"]["uidnext"]), sel

        got = c.fetch("1:*", "(UID RFC822.SIZE FLAGS BODY.PEEK[])")
        stored = {m["uid"]: m for m in cl.messages(user)}
        assert sorted(int(d["UID"]) for d in got.values()) == sorted(stored)
        for d in got.values():
            uid = int(d["UID"])
            body = cl.cat(user, "INBOX", uid)
            assert d["BODY[]"] == body, f"UID {uid}: FETCH through {front} differs from the store"
            assert int(d["RFC822.SIZE"]) == len(body) == stored[uid]["size"]
        uid1, _, _ = cl.find(user, s1)
        uid2, _, _ = cl.find(user, s2)
        assert {got[1]["BODY[]"], got[2]["BODY[]"]} == {raw1, raw2}

        # STORE: the flags and the mod-sequence are the home's.
        untagged = c.ok(f"UID STORE {uid1} +FLAGS (\\Flagged $Label1)")
        fetches = [fetch_dict(r)[1] for r in untagged if re.match(rb"\* \d+ FETCH ", r)]
        assert len(fetches) == 1, untagged
        assert cl.find(user, s1)[1] == {"\\Flagged", "$Label1"}
        assert int(fetches[0]["MODSEQ"][0]) == cl.folders(user)["INBOX"]["highestmodseq"]

        # A FETCH of BODY[] sets \Seen on the home.
        got = c.fetch(str(uid2), "(BODY[])", uid=True)
        assert next(iter(got.values()))["BODY[]"] == raw2
        assert "\\Seen" in cl.find(user, s2)[1]

        # APPEND lands in the home's store byte for byte.
        s3 = unique_subject("append")
        appended = make_message(s3, body="Appended through the proxy.\r\n", to=f"{user}@example.org")
        _, tagged = c.cmd_literal("APPEND Drafts (\\Draft \\Seen)", appended)
        m = re.match(r"OK \[APPENDUID (\d+) (\d+)\]", tagged)
        assert m, f"APPEND: expected OK [APPENDUID ...], got {tagged!r}"
        assert int(m.group(1)) == cl.folders(user)["Drafts"]["uidvalidity"]
        uid3, flags3, raw3 = cl.find(user, s3, "Drafts")
        assert uid3 == int(m.group(2)) and raw3 == appended
        assert flags3 == {"\\Draft", "\\Seen"}

        # MOVE to Trash.
        c.ok(f"UID MOVE {uid2} Trash")
        assert [m["uid"] for m in cl.messages(user)] == [uid1]
        _, flags_moved, raw_moved = cl.find(user, s2, "Trash")
        assert raw_moved == raw2 and "\\Seen" in flags_moved

        f = cl.folders(user)
        assert (f["INBOX"]["messages"], f["INBOX"]["size"], f["INBOX"]["unseen"]) == (1, len(raw1), 1)
        assert (f["Trash"]["messages"], f["Trash"]["size"]) == (1, len(raw2))
        assert (f["Drafts"]["messages"], f["Drafts"]["size"]) == (1, len(appended))

        untagged, tagged = c.cmd("LOGOUT")
        assert any(r.startswith(b"* BYE") for r in untagged) and tagged.startswith("OK"), \
            (untagged, tagged)
        c.expect_closed()
    cl.wait_log(front, proxy_line(user, front, home, "imap"), "the proxy log line")


def test_imap_idle_hears_delivery_made_through_third_node(make_cluster):
    """alice lives on node-a; her session (AUTHENTICATE PLAIN) goes through
    node-b and IDLEs; a delivery made at node-c (relayed to node-a) is
    announced in the IDLE."""
    cl = make_cluster()
    with Raw(cl.imap_addr("node-b")) as c:
        token = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
        _, tagged = c.cmd(f"AUTHENTICATE PLAIN {token}")
        assert tagged.startswith("OK"), f"AUTHENTICATE PLAIN at node-b for alice: {tagged!r}"
        assert b"* 0 EXISTS" in c.select()
        tag = c.tag()
        c.send(f"{tag} IDLE\r\n")
        cont = c.response()
        assert cont.startswith(b"+"), cont

        subject = unique_subject("idle")
        msg = make_message(subject, to="alice@example.org")
        final, _ = deliver_through(cl, "node-c", ["alice@example.org"], msg)
        assert final["alice@example.org"].code == 250, final

        deadline = time.monotonic() + 5
        heard = []
        while b"* 1 EXISTS" not in heard:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"IDLE at node-b did not announce the delivery: {heard!r}"
            r = c.poll(remaining)
            if r is not None:
                heard.append(r)
        c.send("DONE\r\n")
        _, tagged = c.wait(tag)
        assert tagged.startswith("OK"), tagged
        got = c.fetch("1", "(BODY.PEEK[])")
        assert got[1]["BODY[]"] == assert_relayed_copy(cl, "alice", subject, msg)[1]
        c.ok("LOGOUT")


def test_compress_deflate_through_proxy(make_cluster):
    """COMPRESS=DEFLATE on a proxied session: a large repetitive message
    comes through intact and much smaller on the wire; APPEND over the
    compressed stream reaches the home's store; LOGOUT's responses are
    flushed before the close."""
    cl = make_cluster()
    _, raw = cl.deliver_at_home("alice", body="All work and no play makes Jack a dull boy.\r\n" * 10000)
    c = DeflateImap(cl.imap_addr("node-c"))
    try:
        r = c.cmd("a", f'LOGIN alice "{PASSWORD}"')
        assert r[-1].startswith(b"a OK"), r
        caps = b" ".join(c.cmd("b", "CAPABILITY"))
        assert b"COMPRESS=DEFLATE" in caps, caps
        r = c.cmd("c", "COMPRESS DEFLATE")
        assert r[-1].startswith(b"c OK"), r
        c.start_deflate()
        r = c.cmd("d", "SELECT INBOX")
        assert r[-1].startswith(b"d OK") and b"* 1 EXISTS" in r, r
        before = c.wire_in
        r = c.cmd("e", "FETCH 1 BODY.PEEK[]")
        assert r[-1].startswith(b"e OK"), r[-1]
        assert raw in r[0], "the message arrived intact through the compressed proxied session"
        assert c.wire_in - before < len(raw) / 10, "repetitive text must shrink on the wire"

        subject = unique_subject("deflate-append")
        msg = make_message(subject, body="Appended over DEFLATE.\r\n")
        c.send(f"f APPEND Sent {{{len(msg)}+}}\r\n".encode() + msg + b"\r\n")
        r = c.response("f")
        m = re.match(rb"f OK \[APPENDUID \d+ (\d+)\]", r[-1])
        assert m, r
        assert cl.cat("alice", "Sent", int(m.group(1))) == msg

        r = c.cmd("z", "LOGOUT")
        assert r[0].startswith(b"* BYE") and r[-1].startswith(b"z OK"), r
        assert c.closed()
    finally:
        c.close()


def test_large_append_through_proxy(make_cluster):
    """A 5 MB APPEND with a synchronizing literal (the '+' comes back through
    the proxy) and a 2 MB one with LITERAL+, both stored byte for byte on
    the home and fetched back whole through the front."""
    cl = make_cluster(max_message_size="8M")
    line = base64.b64encode(os.urandom(57)) + b"\r\n"      # 78-byte lines
    big = make_message(unique_subject("big"), body=line * (5 * 1024 * 1024 // len(line)))
    plus = make_message(unique_subject("big+"), body=line * (2 * 1024 * 1024 // len(line)))
    with imap_login(cl, "node-c", "alice") as c:
        c.timeout = 60
        uids = []
        for msg, use_plus in ((big, False), (plus, True)):
            _, tagged = c.cmd_literal("APPEND INBOX", msg, plus=use_plus)
            m = re.match(r"OK \[APPENDUID \d+ (\d+)\]", tagged)
            assert m, f"APPEND of {len(msg)} bytes: {tagged!r}"
            uids.append(int(m.group(1)))
            assert cl.cat("alice", "INBOX", uids[-1]) == msg
        c.select()
        got = c.fetch(f"{uids[0]},{uids[1]}", "(UID RFC822.SIZE BODY.PEEK[])", uid=True)
        by_uid = {int(d["UID"]): d for d in got.values()}
        assert by_uid[uids[0]]["BODY[]"] == big and int(by_uid[uids[0]]["RFC822.SIZE"]) == len(big)
        assert by_uid[uids[1]]["BODY[]"] == plus
        c.ok("LOGOUT")
    assert cl.folders("alice")["INBOX"]["size"] == len(big) + len(plus)


# ------------------------------------------------------------------ POP3

@pytest.mark.parametrize("front,home", PAIRS, ids=PAIR_IDS)
def test_pop3_session_through_front(make_cluster, front, home):
    """USER/PASS at `front` for a user homed on `home`; STAT, LIST, UIDL,
    RETR and DELE answer as the home node itself does; QUIT applies the
    DELE on the home."""
    cl = make_cluster()
    user = USER_ON[home]
    stored = [cl.deliver_at_home(user, body=f"Message {i}.\r\n.dotted\r\n")[1] for i in range(3)]
    subjects = [m["subject"] for m in cl.messages(user)]
    with Pop3(cl.pop3_addr(home)) as p:         # the home's own answers, for reference
        assert p.login(user).startswith("+OK")
        _, uidl_home = p.multiline("UIDL")
        _, list_home = p.multiline("LIST")
        p.ok("QUIT")
    with Pop3(cl.pop3_addr(front)) as p:
        assert p.greeting.startswith("+OK"), p.greeting
        reply = p.login(user)
        assert reply.startswith("+OK"), f"PASS at {front} for {user} (home {home}): {reply!r}"
        assert p.ok("STAT").split()[1:3] == ["3", str(sum(len(r) for r in stored))]
        _, listing = p.multiline("LIST")
        assert listing == list_home
        assert [int(l.split()[1]) for l in listing.decode().splitlines()] == [len(r) for r in stored]
        _, uidl = p.multiline("UIDL")
        assert uidl == uidl_home
        _, body = p.multiline("RETR 2")
        assert body == stored[1]
        p.ok("DELE 2")
        assert p.ok("STAT").split()[1:3] == ["2", str(len(stored[0]) + len(stored[2]))]
        p.ok("QUIT")
        p.closed_within(IO_TIMEOUT)
    assert [m["subject"] for m in cl.messages(user)] == [subjects[0], subjects[2]]
    f = cl.folders(user)["INBOX"]
    assert (f["messages"], f["size"]) == (2, len(stored[0]) + len(stored[2]))
    cl.wait_log(front, proxy_line(user, front, home, "pop3"), "the proxy log line")


# ------------------------------------------------------------------ TLS

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    return {name: make_cert(str(d), name) for name in NODE_NAMES}


def test_tls_ends_at_the_front(make_cluster, certs):
    """Each node has its own certificate. imaps and STARTTLS at a front for
    a user homed elsewhere, and pop3s: the client sees the front's
    certificate, then the session works as usual."""
    node_settings = {n: {"tls_cert": certs[n][0], "tls_key": certs[n][1],
                         "imaps_listen": f"127.0.0.1:{free_port()}",
                         "pop3s_listen": f"127.0.0.1:{free_port()}"} for n in NODE_NAMES}
    cl = make_cluster(node_settings=node_settings)
    _, raw_alice = cl.deliver_at_home("alice")
    s_bob, raw_bob = cl.deliver_at_home("bob")
    _, raw_carol = cl.deliver_at_home("carol")

    # imaps at node-b for alice (node-a).
    sock = client_context().wrap_socket(
        socket.create_connection(cl.imap_addr("node-b", "imaps_listen"), timeout=IO_TIMEOUT),
        server_hostname="localhost")
    assert sock.getpeercert(binary_form=True) == cert_der(certs["node-b"][0])
    with imap_over(sock) as c:
        assert c.greeting.startswith(b"* OK"), c.greeting
        c.login("alice")
        c.select()
        assert c.fetch("1", "(BODY.PEEK[])")[1]["BODY[]"] == raw_alice
        c.ok("LOGOUT")

    # STARTTLS at node-c for bob (node-b).
    with Raw(cl.imap_addr("node-c")) as c:
        c.ok("STARTTLS")
        assert c.buf == b"", f"bytes in clear after the STARTTLS reply: {c.buf!r}"
        c.sock = client_context().wrap_socket(c.sock, server_hostname="localhost")
        assert c.sock.getpeercert(binary_form=True) == cert_der(certs["node-c"][0])
        c.login("bob")
        c.select()
        assert c.fetch("1", "(BODY[])")[1]["BODY[]"] == raw_bob
        assert "\\Seen" in cl.find("bob", s_bob)[1]
        c.ok("LOGOUT")

    # pop3s at node-a for carol (node-c).
    sock = client_context().wrap_socket(
        socket.create_connection(cl.pop3_addr("node-a", "pop3s_listen"), timeout=IO_TIMEOUT),
        server_hostname="localhost")
    assert sock.getpeercert(binary_form=True) == cert_der(certs["node-a"][0])
    with Pop3(sock=sock) as p:
        reply = p.login("carol")
        assert reply.startswith("+OK"), reply
        assert p.multiline("RETR 1")[1] == raw_carol
        p.ok("QUIT")


# ------------------------------------------------------------------ real clients

def need(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def run(cmd, home):
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"}
    proc = subprocess.run(cmd, env=env, cwd=str(home), capture_output=True, timeout=CMD_TIMEOUT)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"{cmd[0]} exited {proc.returncode}:\n{out[-4000:]}"
    return out


def maildir_paths(path):
    return glob.glob(f"{path}/cur/*") + glob.glob(f"{path}/new/*")


def maildir_find(path, subject):
    found = []
    for p in maildir_paths(path):
        with open(p, "rb") as f:
            if f"Subject: {subject}\n".encode() in normalize_eol(f.read()):
                found.append(p)
    assert len(found) == 1, f"expected one message {subject!r} in {path}, found {len(found)}"
    return found[0]


def home_state(cl, user, folder="INBOX"):
    """{subject: flags set} of a folder on the user's home node."""
    return {m["subject"]: set(m["flags"]) for m in cl.messages(user, folder)}


def test_mbsync_through_front(make_cluster, tmp_path):
    need("mbsync")
    cl = make_cluster()
    subjects = [cl.deliver_at_home("alice")[0] for _ in range(3)]
    home = tmp_path / "home"
    host, port = cl.imap_addr("node-b")
    rc, maildir = write_mbsync_rc(home, host, port)
    run(["mbsync", "-c", str(rc), "-a"], home)
    inbox = maildir / "INBOX"
    assert len(maildir_paths(inbox)) == 3
    for s in subjects:
        with open(maildir_find(inbox, s), "rb") as f:
            local = re.sub(rb"(?m)^X-TUID: .*\n", b"", normalize_eol(f.read()))  # mbsync's own
            assert local == normalize_eol(cl.find("alice", s)[2])

    # Local changes go up: s0 seen+flagged, s1 deleted, a draft; a new
    # delivery comes down.
    p0 = maildir_find(inbox, subjects[0])
    base = os.path.basename(p0).split(":2,")[0]
    os.rename(p0, os.path.join(inbox, "cur", base + ":2,FS"))
    os.unlink(maildir_find(inbox, subjects[1]))
    s_new, _ = cl.deliver_at_home("alice")
    draft = unique_subject("mbsync-draft")
    os.makedirs(maildir / "Drafts" / "cur", exist_ok=True)
    with open(maildir / "Drafts" / "cur" / "1700000000.1_1.host:2,D", "wb") as f:
        f.write(f"From: alice@example.org\nSubject: {draft}\n\ndraft body\n".encode())
    run(["mbsync", "-c", str(rc), "-a"], home)
    state = home_state(cl, "alice")
    assert set(state) == {subjects[0], subjects[2], s_new}, state
    assert {"\\Seen", "\\Flagged"} <= state[subjects[0]]
    assert "\\Seen" not in state[subjects[2]]
    maildir_find(inbox, s_new)
    drafts = home_state(cl, "alice", "Drafts")
    assert list(drafts) == [draft] and "\\Draft" in drafts[draft]

    # A third run changes nothing on the home.
    before = cl.folders("alice")
    run(["mbsync", "-c", str(rc), "-a"], home)
    after = cl.folders("alice")
    for folder in ("INBOX", "Drafts"):
        keys = ("messages", "uidnext", "highestmodseq")
        assert [after[folder][k] for k in keys] == [before[folder][k] for k in keys], folder


def test_offlineimap_through_front(make_cluster, tmp_path):
    need("offlineimap")
    cl = make_cluster()
    subjects = [cl.deliver_at_home("bob")[0] for _ in range(2)]
    home = tmp_path / "home"
    home.mkdir()
    host, port = cl.imap_addr("node-c")
    rc = home / ".offlineimaprc"
    rc.write_text(f"""[general]
accounts = tern
metadata = {home}/.offlineimap
ui = basic

[Account tern]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {home}/Mail

[Repository remote]
type = IMAP
remotehost = {host}
remoteport = {port}
remoteuser = bob
remotepass = {PASSWORD}
ssl = no
starttls = no
folderfilter = lambda f: f in ('INBOX', 'Sent')
""")
    out = run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], home)
    assert "ERROR" not in out, out
    inbox = home / "Mail" / "INBOX"
    assert len(maildir_paths(inbox)) == 2, out
    for s in subjects:
        with open(maildir_find(inbox, s), "rb") as f:
            assert normalize_eol(f.read()) == normalize_eol(cl.find("bob", s)[2])
    p = maildir_find(inbox, subjects[1])
    head, _, flags = os.path.basename(p).partition(":2,")
    os.rename(p, os.path.join(inbox, "cur", f"{head}:2,{flags}F"))
    out = run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], home)
    assert "ERROR" not in out, out
    state = home_state(cl, "bob")
    assert "\\Flagged" in state[subjects[1]] and "\\Flagged" not in state[subjects[0]]


# ------------------------------------------------------------------ home unreachable

def test_home_node_stopped_then_back(make_cluster):
    """node-a stopped: at node-b, alice's IMAP login is NO [UNAVAILABLE],
    her POP3 PASS -ERR [SYS/TEMP], and in a mixed LMTP transaction only her
    recipient gets 451 4.4.1, each within cluster_timeout. node-a started
    again: the same node-b serves her again by itself."""
    cl = make_cluster()
    cl.expect_outage_errors()
    with imap_login(cl, "node-b", "alice") as c:   # node-b has talked to node-a
        c.ok("LOGOUT")
    cl.stop("node-a")

    tagged, took = timed_imap_login(cl, "node-b", "alice")
    assert tagged.startswith("NO [UNAVAILABLE]"), tagged
    assert took <= FAIL_DEADLINE, f"IMAP login took {took:.2f}s"
    reply, took = timed_pop3_login(cl, "node-b", "alice")
    assert reply.startswith("-ERR [SYS/TEMP]"), reply
    assert took <= FAIL_DEADLINE, f"POP3 login took {took:.2f}s"

    subject = unique_subject("down")
    msg = make_message(subject)
    rcpts = ["bob@example.org", "alice@example.org", "carol@example.org", "nobody@example.org"]
    final, slowest = deliver_through(cl, "node-b", rcpts, msg)
    assert slowest <= FAIL_DEADLINE, f"an LMTP reply took {slowest:.2f}s"
    assert_451_441(final["alice@example.org"], "alice@example.org")
    assert final["nobody@example.org"].code == 550, final
    assert final["bob@example.org"].code == 250 and final["carol@example.org"].code == 250, final
    assert_relayed_copy(cl, "bob", subject, msg, final["bob@example.org"])
    assert_relayed_copy(cl, "carol", subject, msg, final["carol@example.org"])

    cl.restart("node-a")
    assert subject not in home_state(cl, "alice"), "a delivery answered 451 was stored"
    wait_for(lambda: timed_imap_login(cl, "node-b", "alice")[0].startswith("OK"),
             RECOVERY_TIMEOUT, "node-b to serve alice again after node-a came back", interval=0.2)
    assert timed_pop3_login(cl, "node-b", "alice")[0].startswith("+OK")
    subject = unique_subject("back")
    msg = make_message(subject)
    final, _ = deliver_through(cl, "node-b", ["alice@example.org"], msg)
    assert_relayed_copy(cl, "alice", subject, msg, final["alice@example.org"])
    assert len(cl["node-b"].runs) == 1 and cl["node-b"].running(), "node-b was not restarted"


def test_hung_home_node_is_given_up_within_cluster_timeout(make_cluster):
    """node-a SIGSTOPped: its kernel still accepts connections, it answers
    nothing. node-b must give up within cluster_timeout: IMAP NO
    [UNAVAILABLE], POP3 -ERR [SYS/TEMP], LMTP 451 4.4.1 for alice only; and
    serve alice again once node-a runs again."""
    cl = make_cluster()
    cl.expect_outage_errors()
    with imap_login(cl, "node-b", "alice") as c:   # a pooled connection to node-a now exists
        c.ok("LOGOUT")
    cl.pause("node-a")
    try:
        tagged, took = timed_imap_login(cl, "node-b", "alice")
        assert tagged.startswith("NO [UNAVAILABLE]"), tagged
        assert took <= FAIL_DEADLINE, f"IMAP login took {took:.2f}s"
        reply, took = timed_pop3_login(cl, "node-b", "alice")
        assert reply.startswith("-ERR [SYS/TEMP]"), reply
        assert took <= FAIL_DEADLINE, f"POP3 login took {took:.2f}s"
        final, slowest = deliver_through(cl, "node-b", ["alice@example.org", "bob@example.org"],
                                         make_message(unique_subject("hung")))
        assert slowest <= FAIL_DEADLINE, f"an LMTP reply took {slowest:.2f}s"
        assert_451_441(final["alice@example.org"], "alice@example.org")
        assert final["bob@example.org"].code == 250, final
    finally:
        cl.resume("node-a")
    wait_for(lambda: timed_imap_login(cl, "node-b", "alice")[0].startswith("OK"),
             RECOVERY_TIMEOUT, "node-b to serve alice again after node-a resumed", interval=0.2)


class DeliveryLoop(threading.Thread):
    """Back-to-back LMTP transactions on one connection to `addr`, each a
    fresh message to all of `rcpts`. Records (start, end, Message-ID, {rcpt:
    final Reply}, slowest reply) for each."""

    def __init__(self, addr, rcpts):
        super().__init__(daemon=True)
        self.addr, self.rcpts = addr, rcpts
        self.records = []
        self.halt = threading.Event()
        self.error = None

    def run(self):
        try:
            with LmtpConn(self.addr) as c:
                c.lhlo()
                while not self.halt.is_set():
                    msg = make_message(unique_subject("loop"))
                    msgid = re.search(rb"Message-ID: (<[^>]+>)", msg).group(1)
                    t0 = time.monotonic()
                    final, slowest = lmtp_transaction(c, self.rcpts, msg)
                    self.records.append((t0, time.monotonic(), msgid, final, slowest))
        except BaseException as exc:   # reported by the test
            self.error = exc

    def since(self, t):
        return [r for r in list(self.records) if r[0] > t]

    def ok_since(self, t, rcpt):
        return [r for r in self.since(t) if r[3][rcpt].code == 250]

    def check(self):
        assert self.error is None, f"the delivery loop failed: {self.error!r}"


def message_ids_at_home(cl, user):
    """Message-ID -> how many copies, read from the user's store on its home
    node (a local session there, not through any proxy)."""
    counts = {}
    with imap_login(cl, cl.homes[user], user) as c:
        c.ok("EXAMINE INBOX")
        for d in c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])").values():
            hdr = next(v for k, v in d.items() if k.startswith("BODY["))
            m = re.search(rb"(?i)Message-ID:\s*(<[^>]+>)", hdr)
            assert m, hdr
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    assert sum(counts.values()) == cl.folders(user)["INBOX"]["messages"]
    return counts


def test_home_killed_while_sessions_proxied_and_deliveries_relayed(make_cluster):
    """Through node-b: two IMAP sessions of alice (one in IDLE), a POP3
    session of dave, and a loop of LMTP deliveries to alice (node-a), bob
    (node-b) and carol (node-c). node-a is SIGKILLed: each client gets its
    clear error within cluster_timeout + 1 s, bob and carol keep getting
    250. node-a restarts: every message that got 250 is in its store once,
    and node-b, never restarted, serves alice again."""
    cl = make_cluster(users={"alice": "node-a", "dave": "node-a", "bob": "node-b",
                             "carol": "node-c"})
    cl.expect_outage_errors()
    front = "node-b"
    cl.deliver_at_home("alice")
    cl.deliver_at_home("dave")

    idle = imap_login(cl, front, "alice")
    quiet = imap_login(cl, front, "alice")
    pop = Pop3(cl.pop3_addr(front))
    loop = DeliveryLoop(cl.lmtp_addr(front), ["alice@example.org", "bob@example.org",
                                              "carol@example.org"])
    try:
        idle.select()
        idle_tag = idle.tag()
        idle.send(f"{idle_tag} IDLE\r\n")
        assert idle.response().startswith(b"+")
        quiet.select()
        assert pop.login("dave").startswith("+OK")
        assert pop.ok("STAT").split()[1] == "1"

        loop.start()
        wait_for(lambda: loop.check() or len(loop.ok_since(0, "alice@example.org")) >= 10,
                 IO_TIMEOUT, "10 deliveries to alice relayed through node-b")

        cl.kill("node-a")
        killed = time.monotonic()
        deadline = killed + FAIL_DEADLINE

        # The IMAP sessions: * BYE [UNAVAILABLE], then the close.
        for name, c in (("IDLE session", idle), ("selected session", quiet)):
            got = c.expect_closed(timeout=max(0.01, deadline - time.monotonic()))
            last = got.rstrip(b"\r\n").split(b"\r\n")[-1]
            assert last.startswith(b"* BYE [UNAVAILABLE]"), \
                f"{name}: expected * BYE [UNAVAILABLE] before the close, got {got[-300:]!r}"
        # POP3: an -ERR, then the close (a client that is not told at once
        # learns it at its next command).
        readable, _, _ = select.select([pop.sock], [], [], max(0, min(1.0, deadline - time.monotonic())))
        if not readable and not pop.buf:
            pop.send("STAT\r\n")
        got = pop.closed_within(max(0.01, deadline - time.monotonic()))
        assert got.startswith(b"-ERR"), f"POP3 session: expected -ERR then the close, got {got!r}"

        # LMTP: transactions begun after the kill finish in time; alice's
        # recipient gets 451 4.4.1, the others 250.
        wait_for(lambda: loop.check() or len(loop.since(killed)) >= 3, IO_TIMEOUT,
                 "3 LMTP transactions through node-b after the kill")
        for t0, t1, msgid, final, slowest in loop.since(killed):
            assert_451_441(final["alice@example.org"], "alice@example.org")
            assert final["bob@example.org"].code == 250 and final["carol@example.org"].code == 250, final
        # New logins at the front while node-a is dead.
        tagged, took = timed_imap_login(cl, front, "alice")
        assert tagged.startswith("NO [UNAVAILABLE]") and took <= FAIL_DEADLINE, (tagged, took)
        reply, took = timed_pop3_login(cl, front, "dave")
        assert reply.startswith("-ERR [SYS/TEMP]") and took <= FAIL_DEADLINE, (reply, took)

        restarted = time.monotonic()
        cl.restart("node-a")
        wait_for(lambda: loop.check() or loop.ok_since(restarted, "alice@example.org"),
                 RECOVERY_TIMEOUT, "a delivery to alice through node-b to succeed again")
        loop.halt.set()
        loop.join(IO_TIMEOUT)
        assert not loop.is_alive(), "the delivery loop did not stop"
        loop.check()
    finally:
        loop.halt.set()
        for c in (idle, quiet, pop):
            c.close()

    records = loop.records
    for t0, t1, msgid, final, slowest in records:
        assert slowest <= FAIL_DEADLINE, f"an LMTP reply took {slowest:.2f}s ({final!r})"
        reply = final["alice@example.org"]
        assert reply.code == 250 or (reply.code == 451 and reply.enhanced() == "4.4.1"), reply
        assert final["bob@example.org"].code == 250 and final["carol@example.org"].code == 250, final
    for user in ("alice", "bob", "carol"):
        copies = message_ids_at_home(cl, user)
        for t0, t1, msgid, final, slowest in records:
            n = copies.get(msgid, 0)
            if final[f"{user}@example.org"].code == 250:
                assert n == 1, f"{msgid!r} got 250 for {user} but is stored {n} times"
            else:
                assert n <= 1, f"{msgid!r} is stored {n} times for {user}"

    # The same front serves alice again.
    assert len(cl[front].runs) == 1 and cl[front].running()
    with imap_login(cl, front, "alice") as c:
        c.select()
        c.ok("LOGOUT")
    reply, _ = timed_pop3_login(cl, front, "dave")
    assert reply.startswith("+OK"), reply


# ------------------------------------------------------------------ wrong secret

FAILED_AUTH = r"failed authentication[^\n]*127\.0\.0\.1|127\.0\.0\.1[^\n]*failed authentication"


def test_node_with_wrong_secret_is_refused(make_cluster):
    """node-x shares the directory but not the secret: it can neither get a
    session nor relay a delivery for users of node-a, nor can node-b for
    node-x's user; the refusing node logs the failed authentication with the
    peer's address; nothing hangs, nothing is delivered, and the cluster
    itself is unaffected."""
    cl = make_cluster()
    cl.add_node("node-x", secret="some-other-secret-0123456789")
    cl.start("node-x")
    cl.add_user("xavier", "node-x")
    cl.expect_outage_errors()

    tagged, took = timed_imap_login(cl, "node-x", "alice")
    assert tagged.startswith("NO [UNAVAILABLE]"), tagged
    assert took <= FAIL_DEADLINE, f"IMAP login took {took:.2f}s"
    cl.wait_log("node-a", FAILED_AUTH, "the failed authentication of node-x")
    reply, took = timed_pop3_login(cl, "node-x", "alice")
    assert reply.startswith("-ERR [SYS/TEMP]"), reply
    assert took <= FAIL_DEADLINE, f"POP3 login took {took:.2f}s"

    subject = unique_subject("wrong-secret")
    msg = make_message(subject)
    final, slowest = deliver_through(cl, "node-x", ["xavier@example.org", "alice@example.org"], msg)
    assert slowest <= FAIL_DEADLINE, f"an LMTP reply took {slowest:.2f}s"
    assert_451_441(final["alice@example.org"], "alice@example.org")
    assert final["xavier@example.org"].code == 250, final
    assert cl.folders("alice")["INBOX"]["messages"] == 0

    # The other way: node-b cannot get a session on node-x.
    tagged, took = timed_imap_login(cl, "node-b", "xavier")
    assert tagged.startswith("NO [UNAVAILABLE]"), tagged
    assert took <= FAIL_DEADLINE, f"IMAP login took {took:.2f}s"
    cl.wait_log("node-x", FAILED_AUTH, "the failed authentication of node-b")

    # The cluster itself still works.
    with imap_login(cl, "node-b", "alice") as c:
        c.ok("LOGOUT")


# ------------------------------------------------------------------ bad input

def hello(name=b"node-b"):
    return frame(FRAME_HELLO, CLUSTER_PROTOCOL, name, os.urandom(32))


class BadPeer(threading.Thread):
    """Connects to a cluster port and misbehaves; records how long the node
    took to close the connection (None: not within the deadline) and what
    it sent meanwhile."""

    def __init__(self, addr, name, payload=b"", slow=False, deadline=FAIL_DEADLINE):
        super().__init__(daemon=True)
        self.addr, self.name, self.payload, self.slow = addr, name, payload, slow
        self.deadline = deadline
        self.closed_after = None
        self.received = b""
        self.error = None

    def run(self):
        try:
            sock = socket.create_connection(self.addr, timeout=IO_TIMEOUT)
        except OSError as exc:
            self.error = exc
            return
        with sock:
            t0 = time.monotonic()
            end = t0 + self.deadline
            pending = self.payload
            try:
                if not self.slow:
                    sock.sendall(pending)
                    pending = b""
                while time.monotonic() < end:
                    if self.slow and pending:
                        sock.sendall(pending[:1])
                        pending = pending[1:]
                    wait = min(1.0, end - time.monotonic()) if self.slow else end - time.monotonic()
                    readable, _, _ = select.select([sock], [], [], max(0, wait))
                    if readable:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        self.received += chunk
                else:
                    return
            except (ConnectionResetError, BrokenPipeError):
                pass
            self.closed_after = time.monotonic() - t0


def test_bad_input_on_cluster_port(make_cluster):
    """Garbage, frames of length 0, 0xffffffff and just over the maximum, an
    unknown frame type, a truncated frame, a silent peer, a peer sending one
    byte per second, an OPEN without authenticating and an AUTH with a wrong
    proof: node-a closes each such connection (within cluster_timeout for
    the silent and slow ones) and gives it nothing but a CHALLENGE or an
    ERROR; meanwhile a proxied session and relayed deliveries through node-a
    keep working."""
    cl = make_cluster()
    cl.expect_outage_errors("node-a")
    addr = cl.cluster_addr("node-a")
    session = imap_login(cl, "node-b", "alice")
    with session:
        session.select()
        peers = [
            BadPeer(addr, "garbage", b"GET / HTTP/1.0\r\nHost: node-a\r\n\r\n" + os.urandom(200)),
            BadPeer(addr, "length 0", struct.pack(">I", 0)),
            BadPeer(addr, "length 0xffffffff", b"\xff\xff\xff\xff"),
            BadPeer(addr, "length over the maximum", struct.pack(">IB", 4097, FRAME_HELLO)),
            BadPeer(addr, "unknown frame type", frame(99, b"x")),
            BadPeer(addr, "truncated frame", hello()[:20]),
            BadPeer(addr, "silent peer"),
            BadPeer(addr, "one byte per second", hello(), slow=True),
        ]
        for p in peers:
            p.start()

        # Meanwhile the node serves: the proxied session, a relayed
        # delivery to node-a, a new proxied login.
        subject = unique_subject("meanwhile")
        msg = make_message(subject)
        final, _ = deliver_through(cl, "node-c", ["alice@example.org"], msg)
        assert final["alice@example.org"].code == 250, final
        untagged = session.ok("NOOP")
        assert b"* 1 EXISTS" in untagged, f"the proxied session did not see the delivery: {untagged!r}"
        with imap_login(cl, "node-c", "alice") as c:
            c.ok("LOGOUT")

        # A peer that skips AUTH, and one whose proof is wrong.
        for name, second in (("OPEN before AUTH", frame(FRAME_OPEN, b"imap", b"alice", b"127.0.0.1", b"")),
                             ("wrong AUTH", frame(FRAME_AUTH, os.urandom(32)))):
            with socket.create_connection(addr, timeout=IO_TIMEOUT) as sock:
                t0 = time.monotonic()
                sock.sendall(hello())
                got = b""
                while FRAME_CHALLENGE not in frame_types(got):
                    assert time.monotonic() - t0 < FAIL_DEADLINE, f"{name}: no CHALLENGE, got {got!r}"
                    chunk = sock.recv(65536)
                    assert chunk, f"{name}: closed before its CHALLENGE (got {got!r})"
                    got += chunk
                try:
                    sock.sendall(second)
                    while True:
                        remaining = t0 + FAIL_DEADLINE - time.monotonic()
                        assert remaining > 0, f"{name}: node-a did not close the connection"
                        sock.settimeout(remaining)
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        got += chunk
                except (ConnectionResetError, BrokenPipeError):
                    pass
                types = frame_types(got)
                assert FRAME_READY not in types and FRAME_OPENED not in types, \
                    f"{name}: an unauthenticated peer got {types}"
                assert set(types) <= {FRAME_CHALLENGE, FRAME_ERROR}, f"{name}: got frames {types}"
        cl.wait_log("node-a", FAILED_AUTH, "the failed authentication of the wrong AUTH")

        for p in peers:
            p.join(FAIL_DEADLINE + IO_TIMEOUT)
            assert p.error is None, f"{p.name}: {p.error!r}"
            assert p.closed_after is not None, \
                f"{p.name}: node-a did not close the connection within {FAIL_DEADLINE}s"
            types = frame_types(p.received)
            assert set(types) <= {FRAME_CHALLENGE, FRAME_ERROR}, f"{p.name}: node-a sent frames {types}"

        # Afterwards too: the session, a relayed delivery, a new login.
        got = session.fetch("1", "(BODY.PEEK[])")
        assert got[1]["BODY[]"] == assert_relayed_copy(cl, "alice", subject, msg)[1]
        subject2 = unique_subject("after")
        msg2 = make_message(subject2)
        final, _ = deliver_through(cl, "node-b", ["alice@example.org"], msg2)
        assert_relayed_copy(cl, "alice", subject2, msg2, final["alice@example.org"])
        session.ok("LOGOUT")
    assert cl["node-a"].running() and len(cl["node-a"].runs) == 1
