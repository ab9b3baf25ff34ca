"""A store write that fails must give 451 4.3.0 and leave nothing partial.
The failure is real, not simulated: ternd runs with RLIMIT_FSIZE set (and
SIGXFSZ ignored, which exec keeps), so a write past 1 MiB gets EFBIG even
as root."""

import base64
import os
import resource
import signal
import subprocess

from ternlib import LmtpConn, make_message, unique_subject

FILE_LIMIT = 1024 * 1024


def limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))


def integrity(path):
    proc = subprocess.run(["sqlite3", path, "PRAGMA integrity_check"], capture_output=True, timeout=60)
    return proc.stdout.decode().strip() + proc.stderr.decode().strip()


def deliver(node, rcpts, msg):
    with LmtpConn(node.lmtp_addr) as c:
        c.lhlo()
        rcpt, data = c.deliver("sender@remote.test", rcpts, msg)
        assert all(r.code == 250 for r in rcpt), rcpt
        return data


def test_store_write_failure_451_nothing_partial(make_ternd):
    node = make_ternd(max_message_size="8M", preexec_fn=limit_file_size)
    node.expect_error(r"alice|bob|File too large")  # the failed writes are logged

    before = unique_subject("before")
    assert [r.code for r in deliver(node, ["alice@example.org"], make_message(before))] == [250]

    # Random data does not compress: whatever the store does, this cannot fit.
    big = unique_subject("too-big-for-disk")
    body = base64.encodebytes(os.urandom(3 * 1024 * 1024)).replace(b"\n", b"\r\n")
    data = deliver(node, ["alice@example.org", "bob@example.org"], make_message(big, body=body))
    assert [(r.code, r.enhanced()) for r in data] == [(451, "4.3.0")] * 2, data

    assert node.subjects("alice") == [before], "a failed delivery left something behind"
    assert node.subjects("bob") == []
    for user in ("alice", "bob"):
        if os.path.exists(node.mail_db(user)):
            assert integrity(node.mail_db(user)) == "ok"

    # The store is still usable once messages fit again.
    after = unique_subject("after")
    assert [r.code for r in deliver(node, ["alice@example.org", "bob@example.org"],
                                    make_message(after))] == [250, 250]
    assert node.subjects("alice") == [before, after]
    assert node.subjects("bob") == [after]
