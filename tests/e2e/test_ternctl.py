"""ternctl as the administrator uses it next to LMTP delivery: users, their
default folders, and errors reported as one 'ternctl: ' line."""

from ternlib import LmtpConn, DEFAULT_FOLDERS, make_message, unique_subject


def assert_ctl_error(proc):
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, f"expected failure, got exit 0: {proc.stdout!r}"
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("ternctl: "), f"stderr must be one 'ternctl: ' line: {err!r}"


def test_new_user_has_default_folders(ternd):
    proc = ternd.ctl("mailbox", "folders", "alice")
    names = proc.stdout.decode().split()
    for f in DEFAULT_FOLDERS:
        assert f in names, f"{f} missing from {names}"
    js = ternd.ctl("mailbox", "folders", "alice", as_json=True)
    json_names = [f["name"] if isinstance(f, dict) else f for f in js]
    assert sorted(json_names) == sorted(DEFAULT_FOLDERS), js
    for f in DEFAULT_FOLDERS:
        assert ternd.messages("alice", f) == []


def test_user_list_and_del(ternd):
    out = ternd.ctl("user", "list").stdout.decode()
    assert "alice" in out and "bob" in out
    ternd.ctl("user", "del", "bob")
    assert "bob" not in ternd.ctl("user", "list").stdout.decode()
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        c.expect("MAIL FROM:<a@b.test>", 250)
        r = c.cmd("RCPT TO:<bob@example.org>")
        assert (r.code, r.enhanced()) == (550, "5.1.1"), r


def test_user_added_while_running_receives_mail(ternd):
    ternd.add_user("carol", password="carol's secret")
    subject = unique_subject("carol")
    with LmtpConn(ternd.lmtp_addr) as c:
        c.lhlo()
        _, data = c.deliver("a@b.test", ["carol@example.org"], make_message(subject))
        assert [r.code for r in data] == [250]
    assert ternd.subjects("carol") == [subject]


def test_errors_are_one_line(ternd):
    assert_ctl_error(ternd.ctl("mailbox", "list", "nobody", "INBOX", check=False))
    assert_ctl_error(ternd.ctl("mailbox", "list", "alice", "NoSuchFolder", check=False))
    assert_ctl_error(ternd.ctl("mailbox", "cat", "alice", "INBOX", "999", check=False))
    assert_ctl_error(ternd.ctl("user", "add", "alice", "--password-stdin", input="x\n", check=False))
    assert_ctl_error(ternd.ctl("user", "add", "alice@example.org", "--password-stdin",
                               input="x\n", check=False))
    assert_ctl_error(ternd.ctl("user", "del", "nobody", check=False))
    assert_ctl_error(ternd.ctl("no-such-command", check=False))
