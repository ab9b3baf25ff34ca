"""A private Postfix instance for end-to-end tests: its own config, queue and
data directories in a temporary directory, no SMTP listener, mail for
example.org handed to an LMTP server on a loopback port. Needs root."""

import os
import pwd
import shutil
import subprocess
import tempfile

from ternlib import wait_for

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin")
SENDMAIL = shutil.which("sendmail", path="/usr/sbin:/usr/lib:/usr/bin")
POSTCONF = shutil.which("postconf", path="/usr/sbin:/usr/bin")


def _first_existing(*paths):
    return next((p for p in paths if os.path.exists(p)), None)


def _run(*cmd, **kwargs):
    kwargs.setdefault("timeout", 60)
    return subprocess.run([str(c) for c in cmd], capture_output=True, **kwargs)


class PrivatePostfix:
    def __init__(self, lmtp_port, domain="example.org"):
        # Not under pytest's tmp_path: that is mode 0700, and Postfix daemons
        # running as the postfix user must reach the queue.
        self.root = tempfile.mkdtemp(prefix="tern-postfix-")
        os.chmod(self.root, 0o755)
        self.conf = os.path.join(self.root, "etc")
        self.queue = os.path.join(self.root, "queue")
        self.data = os.path.join(self.root, "data")
        self.maillog = os.path.join(self.root, "maillog")
        for d in (self.conf, self.queue, self.data):
            os.mkdir(d, 0o755)
        main_cf = _first_existing("/etc/postfix/main.cf", "/usr/share/postfix/main.cf.debian")
        if main_cf:
            shutil.copy(main_cf, os.path.join(self.conf, "main.cf"))
        else:
            open(os.path.join(self.conf, "main.cf"), "w").close()
        self._write_master_cf()
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "maillog_file": self.maillog,
            "maillog_file_prefixes": self.root,
            "syslog_name": "postfix-tern-test",
            "myhostname": "mta.tern-test.invalid",
            "mydomain": "tern-test.invalid",
            "myorigin": "$myhostname",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mydestination": "",
            "relay_domains": "",
            "relayhost": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "virtual_alias_maps": "",
            "virtual_mailbox_domains": domain,
            "virtual_mailbox_maps": "",
            "virtual_transport": f"lmtp:inet:127.0.0.1:{lmtp_port}",
            "lmtp_host_lookup": "native",
            "smtputf8_enable": "no",
            "smtpd_tls_security_level": "none",
            "smtp_tls_security_level": "none",
            "lmtp_tls_security_level": "none",
            # Deliver at once, and retry soon if the LMTP server said 4xx.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "maximal_queue_lifetime": "5m",
            "bounce_queue_lifetime": "5m",
        }
        _run(POSTCONF, "-c", self.conf, "-e", *(f"{k}={v}" for k, v in settings.items()), check=True)
        # The queue stays root's (postfix start creates its subdirectories
        # with the right owners); data_directory belongs to mail_owner.
        owner = pwd.getpwnam(_run(POSTCONF, "-c", self.conf, "-h", "mail_owner",
                                  check=True).stdout.decode().strip())
        os.chown(self.data, owner.pw_uid, owner.pw_gid)
        os.chmod(self.data, 0o700)
        self.running = False

    def _write_master_cf(self):
        """Debian's master.cf without the SMTP listener and without chroot
        (a chroot would need copies of /etc files in the queue directory)."""
        out = []
        with open(_first_existing("/etc/postfix/master.cf", "/usr/share/postfix/master.cf.dist")) as f:
            for line in f:
                if line.startswith(("#", " ", "\t")) or not line.strip():
                    out.append(line)
                    continue
                fields = line.split()
                if len(fields) >= 8 and fields[1] == "inet":
                    out.append("#" + line)  # no smtpd on port 25
                    continue
                if len(fields) >= 8:
                    fields[4] = "n"  # chroot column
                    line = " ".join(fields[:8]) + ("" if len(fields) == 8 else " " + " ".join(fields[8:])) + "\n"
                out.append(line)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.writelines(out)

    def postfix(self, *args, check=True):
        proc = _run(POSTFIX, "-c", self.conf, *args)
        if check and proc.returncode != 0:
            raise AssertionError(f"postfix -c {self.conf} {' '.join(args)} exited {proc.returncode}:\n"
                                 + proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
                                 + "\n" + self.log())
        return proc

    def start(self):
        self.postfix("check")
        self.postfix("start")
        self.running = True
        wait_for(self.master_pid, 30, "the Postfix master to write its pid file")

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def sendmail(self, sender, recipients, message):
        proc = _run(SENDMAIL, "-C", self.conf, "-i", "-f", sender, *recipients, input=message)
        assert proc.returncode == 0, f"sendmail exited {proc.returncode}: {proc.stderr!r}\n{self.log()}"

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return "(no Postfix log)"

    def stop(self):
        if self.running:
            pid = self.master_pid()
            self.postfix("stop", check=False)
            if pid:
                def gone():
                    # Not our child: gone once it no longer exists or is a zombie.
                    try:
                        with open(f"/proc/{pid}/stat") as f:
                            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
                    except OSError:
                        return True
                try:
                    wait_for(gone, 30, "the Postfix master to exit")
                except AssertionError:
                    self.postfix("abort", check=False)
                    raise
            self.running = False

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
