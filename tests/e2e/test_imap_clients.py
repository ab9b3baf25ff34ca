"""Real clients from Debian against Tern, each in a temporary HOME: fetchmail
and curl over POP3, curl, mbsync (both ways), offlineimap and mutt over IMAP.
The server's state is checked afterwards through our own IMAP session or
ternctl, so a client that silently did nothing fails the test."""

import glob
import os
import re
import shutil
import subprocess

import pytest

from imap_helpers import Raw, deliver, imap_addr, imap_node, pop3_addr
from mbsync_config import write_mbsync_rc
from ternlib import CMD_TIMEOUT, PASSWORD, unique_subject


def need(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def run(cmd, home, input=None, ok_codes=(0,), env_extra=None):
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"}
    env.update(env_extra or {})
    proc = subprocess.run(cmd, env=env, cwd=str(home), input=input, capture_output=True,
                          timeout=CMD_TIMEOUT)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode in ok_codes, f"{cmd[0]} exited {proc.returncode}:\n{out[-4000:]}"
    return proc, out


@pytest.fixture
def node(make_ternd):
    return imap_node(make_ternd, pop3=True)


@pytest.fixture
def pop3node(make_ternd):
    return imap_node(make_ternd, pop3=True)


def server_state(node, folder="INBOX"):
    """{uid: (flags set, subject)} of a folder, through IMAP."""
    with Raw(node) as c:
        c.login()
        c.ok(f"EXAMINE {folder}")
        got = c.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])") \
            if not _empty(c, folder) else {}
        c.ok("LOGOUT")
    state = {}
    for d in got.values():
        hdr = next(v for k, v in d.items() if k.startswith("BODY["))
        subj = re.search(rb"Subject: (.*?)\r\n", hdr).group(1).decode()
        state[int(d["UID"])] = (set(str(f) for f in d["FLAGS"]), subj)
    return state


def _empty(c, folder):
    untagged = c.ok(f"STATUS {folder} (MESSAGES)")
    m = re.search(rb"MESSAGES (\d+)", b" ".join(untagged))
    return m is not None and int(m.group(1)) == 0


# ------------------------------------------------------------------ POP3

def test_fetchmail_pop3_keep(pop3node, tmp_path):
    node = pop3node
    need("fetchmail")
    s1 = deliver(node)
    s2 = deliver(node)
    home = tmp_path / "home"
    home.mkdir()
    host, port = pop3_addr(node)
    rc = home / ".fetchmailrc"
    rc.write_text(f'set no syslog\npoll {host} service {port} protocol pop3 auth password\n'
                  f'  user "alice" password "{PASSWORD}" is "localuser" here\n'
                  f"  keep sslproto ''\n")
    rc.chmod(0o600)
    out1 = home / "out1.bsmtp"
    run(["fetchmail", "-f", str(rc), "--nodetach", "--bsmtp", str(out1)], home)
    got = out1.read_bytes()
    assert f"Subject: {s1}".encode() in got and f"Subject: {s2}".encode() in got
    # The body reached fetchmail unchanged.
    assert node.find("alice", "INBOX", s1).split(b"\r\n\r\n", 1)[1] in got
    # --keep: nothing deleted on the server.
    assert sorted(node.subjects("alice")) == sorted([s1, s2])
    # A second poll finds no new mail (UIDL kept in ~/.fetchids); exit 1 = no mail.
    out2 = home / "out2.bsmtp"
    run(["fetchmail", "-f", str(rc), "--nodetach", "--bsmtp", str(out2)], home, ok_codes=(1,))
    assert not out2.exists() or b"Subject:" not in out2.read_bytes()
    # A new delivery is the only message of the third poll.
    s3 = deliver(node)
    out3 = home / "out3.bsmtp"
    run(["fetchmail", "-f", str(rc), "--nodetach", "--bsmtp", str(out3)], home)
    got3 = out3.read_bytes()
    assert got3.count(b"\r\nSubject: ") == 1 and f"Subject: {s3}".encode() in got3


def test_curl_pop3(pop3node, tmp_path):
    node = pop3node
    need("curl")
    s1 = deliver(node)
    s2 = deliver(node)
    host, port = pop3_addr(node)
    url = f"pop3://{host}:{port}"
    _, listing = run(["curl", "-sS", "-u", f"alice:{PASSWORD}", url + "/"], tmp_path)
    lines = [l.split() for l in listing.strip().splitlines()]
    assert [l[0] for l in lines] == ["1", "2"], listing
    proc, _ = run(["curl", "-sS", "-u", f"alice:{PASSWORD}", url + "/2"], tmp_path)
    assert proc.stdout == node.find("alice", "INBOX", s2)
    assert int(lines[1][1]) == len(proc.stdout)
    proc, out = run(["curl", "-sS", "-u", "alice:wrong-password", url + "/1"], tmp_path,
                    ok_codes=(67,))  # CURLE_LOGIN_DENIED
    assert sorted(node.subjects("alice")) == sorted([s1, s2])


# ------------------------------------------------------------------ IMAP

def test_curl_imap(node, tmp_path):
    need("curl")
    s1 = deliver(node)
    s2 = deliver(node)
    host, port = imap_addr(node)
    base = f"imap://{host}:{port}"
    auth = ["-u", f"alice:{PASSWORD}"]
    _, listing = run(["curl", "-sS", *auth, base + "/"], tmp_path)
    names = set(re.findall(r'^\* LIST \([^)]*\) (?:"[^"]*"|NIL) "?([^"\r\n]+)"?', listing, re.M))
    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk"} <= names, listing
    _, inbox_list = run(["curl", "-sS", *auth, base + "/INBOX"], tmp_path)
    assert "INBOX" in inbox_list, inbox_list
    proc, _ = run(["curl", "-sS", *auth, base + "/INBOX;UID=1"], tmp_path)
    assert proc.stdout == node.find("alice", "INBOX", s1)
    proc, _ = run(["curl", "-sS", *auth, base + "/INBOX;MAILINDEX=2"], tmp_path)
    assert proc.stdout == node.find("alice", "INBOX", s2)
    _, found = run(["curl", "-sS", *auth, base + "/INBOX?SUBJECT%20" + s2.split()[1]], tmp_path)
    assert re.search(r"^\* SEARCH 2\s*$", found, re.M), found
    # Upload: APPEND through curl lands in the folder byte for byte.
    subject = unique_subject("curl-append")
    msg = (f"From: a@b.test\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\r\n"
           "appended by curl\r\n").encode()
    f = tmp_path / "msg.eml"
    f.write_bytes(msg)
    run(["curl", "-sS", *auth, "-T", str(f), base + "/Drafts"], tmp_path)
    assert node.find("alice", "Drafts", subject) == msg
    # A custom command.
    _, examine = run(["curl", "-sS", *auth, "-X", "EXAMINE INBOX", base + "/"], tmp_path)
    assert re.search(r"^\* 2 EXISTS", examine, re.M), examine
    run(["curl", "-sS", "-u", "alice:wrong", base + "/"], tmp_path, ok_codes=(67,))


def mbsync_rc(home, node):
    return write_mbsync_rc(home, *imap_addr(node))


def maildir_files(path):
    return sorted(os.path.basename(p) for p in glob.glob(f"{path}/cur/*") + glob.glob(f"{path}/new/*"))


def maildir_find(path, subject):
    for p in glob.glob(f"{path}/cur/*") + glob.glob(f"{path}/new/*"):
        with open(p, "rb") as f:
            if f"Subject: {subject}\n".encode() in f.read().replace(b"\r\n", b"\n"):
                return p
    raise AssertionError(f"no message with subject {subject!r} in {path}")


def test_mbsync_both_ways(node, tmp_path):
    need("mbsync")
    subjects = [deliver(node) for _ in range(3)]
    home = tmp_path / "home"
    home.mkdir()
    rc, maildir = mbsync_rc(home, node)
    run(["mbsync", "-c", str(rc), "-a"], home)
    inbox = maildir / "INBOX"
    assert len(maildir_files(inbox)) == 3
    for s in subjects:
        maildir_find(inbox, s)

    # Local changes: mark subjects[0] seen+flagged, delete subjects[1]; a new
    # delivery on the server side at the same time; a local draft.
    p0 = maildir_find(inbox, subjects[0])
    base = os.path.basename(p0).split(":2,")[0]
    os.rename(p0, os.path.join(inbox, "cur", base + ":2,FS"))
    os.unlink(maildir_find(inbox, subjects[1]))
    s_new = deliver(node)
    draft_subject = unique_subject("mbsync-draft")
    drafts = maildir / "Drafts"
    os.makedirs(drafts / "cur", exist_ok=True)
    with open(drafts / "cur" / "1700000000.1_1.host:2,D", "wb") as f:
        f.write(f"From: alice@example.org\nSubject: {draft_subject}\n\ndraft body\n".encode())
    run(["mbsync", "-c", str(rc), "-a"], home)

    state = server_state(node)
    by_subject = {subj: flags for flags, subj in state.values()}
    assert set(by_subject) == {subjects[0], subjects[2], s_new}, \
        f"local deletion must reach the server (expunged): {by_subject}"
    assert {"\\Seen", "\\Flagged"} <= by_subject[subjects[0]], by_subject
    assert "\\Seen" not in by_subject[subjects[2]]
    maildir_find(inbox, s_new)
    drafts_state = server_state(node, "Drafts")
    assert [subj for _, subj in drafts_state.values()] == [draft_subject]
    assert "\\Draft" in next(iter(drafts_state.values()))[0]

    # A second sync transfers nothing: local files and server state unchanged.
    before_local = (maildir_files(inbox), maildir_files(drafts))
    with Raw(node) as c:
        c.login()
        hms_before = c.ok("STATUS INBOX (UIDNEXT MESSAGES HIGHESTMODSEQ)")
    _, out = run(["mbsync", "-V", "-c", str(rc), "-a"], home)
    print("second mbsync run:\n" + out)
    assert (maildir_files(inbox), maildir_files(drafts)) == before_local
    assert server_state(node) == state
    with Raw(node) as c:
        c.login()
        assert c.ok("STATUS INBOX (UIDNEXT MESSAGES HIGHESTMODSEQ)") == hms_before


def test_offlineimap_one_shot(node, tmp_path):
    need("offlineimap")
    subjects = [deliver(node) for _ in range(2)]
    home = tmp_path / "home"
    home.mkdir()
    host, port = imap_addr(node)
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
remoteuser = alice
remotepass = {PASSWORD}
ssl = no
starttls = no
folderfilter = lambda f: f in ('INBOX', 'Sent')
""")
    _, out = run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], home)
    assert "ERROR" not in out, out
    inbox = home / "Mail" / "INBOX"
    assert len(maildir_files(inbox)) == 2, out
    for s in subjects:
        maildir_find(inbox, s)
    # Local flag change goes up on the next run.
    p = maildir_find(inbox, subjects[1])
    head, _, flags = os.path.basename(p).partition(":2,")
    os.rename(p, os.path.join(inbox, "cur", f"{head}:2,{flags}F"))
    _, out = run(["offlineimap", "-c", str(rc), "-o", "-u", "basic"], home)
    assert "ERROR" not in out, out
    flags_by_subject = {subj: f for f, subj in server_state(node).values()}
    assert "\\Flagged" in flags_by_subject[subjects[1]]
    assert "\\Flagged" not in flags_by_subject[subjects[0]]


def test_mutt_batch_fcc_over_imap(node, tmp_path):
    """mutt needs a terminal for its menus; its batch send mode does not, and
    saves the Fcc copy into an IMAP folder: LOGIN, SELECT/APPEND over IMAP."""
    need("mutt")
    home = tmp_path / "home"
    home.mkdir()
    host, port = imap_addr(node)
    sendmail = home / "fake-sendmail"
    sendmail.write_text(f"#!/bin/sh\ncat > {home}/sent.eml\n")
    sendmail.chmod(0o755)
    rc = home / ".muttrc"
    rc.write_text(f"""set folder="imap://alice@{host}:{port}/"
set imap_user="alice"
set imap_pass="{PASSWORD}"
set ssl_starttls=no
set ssl_force_tls=no
set record="=Sent"
set copy=yes
set sendmail="{sendmail}"
set from="alice@example.org"
set use_from=yes
""")
    subject = unique_subject("mutt")
    run(["mutt", "-n", "-F", str(rc), "-s", subject, "bob@example.org"], home,
        input=b"hello from mutt\n")
    assert (home / "sent.eml").exists(), "mutt did not run the sendmail program"
    raw = node.find("alice", "Sent", subject)
    assert b"hello from mutt" in raw
