"""Postfix in front of ternd: a private Postfix instance hands mail for
example.org to ternd over LMTP, as a real installation would."""

import os

import pytest

from ternlib import make_message, split_added_headers, unique_subject, wait_for
import postfix_instance

pytestmark = pytest.mark.skipif(
    not (postfix_instance.POSTFIX and postfix_instance.SENDMAIL and postfix_instance.POSTCONF),
    reason="Postfix is not installed (postfix, sendmail and postconf are needed)")


@pytest.fixture
def postfix(ternd):
    if os.geteuid() != 0:
        pytest.skip("a private Postfix instance needs root")
    pf = postfix_instance.PrivatePostfix(ternd.lmtp_port)
    try:
        pf.start()
        yield pf
    finally:
        pf.cleanup()


def test_postfix_delivers_through_lmtp(ternd, postfix):
    s1, s2, s3 = unique_subject("pf-inbox"), unique_subject("pf-junk"), unique_subject("pf-unknown")
    postfix.sendmail("sender@remote.test", ["alice@example.org"], make_message(s1))
    postfix.sendmail("sender@remote.test", ["alice+Junk@example.org", "bob@example.org"],
                     make_message(s2, to="alice+Junk@example.org, bob@example.org"))
    # An unknown recipient: Postfix must bounce it back to the sender (bob).
    postfix.sendmail("bob@example.org", ["nobody@example.org"], make_message(s3, sender="bob@example.org"))

    def delivered():
        return (s1 in ternd.subjects("alice") and s2 in ternd.subjects("alice", "Junk")
                and s2 in ternd.subjects("bob"))
    try:
        wait_for(delivered, 60, "Postfix to deliver the messages to ternd")
        wait_for(lambda: any("Undelivered" in (s or "") for s in ternd.subjects("bob")), 60,
                 "the bounce for nobody@example.org to reach bob")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nPostfix log:\n{postfix.log()}") from None

    assert ternd.subjects("alice").count(s1) == 1
    assert ternd.subjects("alice", "Junk").count(s2) == 1
    assert ternd.subjects("bob").count(s2) == 1
    assert s2 not in ternd.subjects("alice")
    raw = ternd.find("alice", "INBOX", s1)
    fields, _ = split_added_headers(raw)
    assert ("return-path", "<sender@remote.test>") in [(n.lower(), v) for n, v in fields], fields
    assert b"Received: by mta.tern-test.invalid (Postfix" in raw.replace(b"\r\n", b"\n")

    log = postfix.log()
    assert "status=bounced" in log and "5.1.1" in log, log
    assert log.count("status=sent") >= 3, log
    assert "status=deferred" not in log, log
