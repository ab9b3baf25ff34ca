"""The one mbsync configuration the end-to-end tests use: a plain-text
IMAP account for one user and a maildir under the test's home, synchronised
both ways (new mail, flags, expunges, folders)."""

from ternlib import PASSWORD


def write_mbsync_rc(home, host, port, patterns=("INBOX", "Drafts"), user="alice",
                    password=PASSWORD):
    """Writes home/.mbsyncrc and creates home/Mail; returns (rc, maildir)."""
    maildir = home / "Mail"
    maildir.mkdir(parents=True, exist_ok=True)
    rc = home / ".mbsyncrc"
    rc.write_text(f"""IMAPAccount tern
Host {host}
Port {port}
User {user}
Pass "{password}"
SSLType None
AuthMechs LOGIN PLAIN

IMAPStore remote
Account tern

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel tern
Far :remote:
Near :local:
Patterns {" ".join(patterns)}
Create Both
Expunge Both
SyncState *
Sync All
""")
    return rc, maildir
