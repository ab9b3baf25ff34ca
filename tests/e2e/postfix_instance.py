"""A private Postfix instance for end-to-end tests: its own config, queue and
data directories in a temporary directory, no SMTP listener, mail for
example.org handed to an LMTP server on a loopback port. Needs root."""

import os
import re
import shutil
import subprocess
import tempfile

from ternlib import wait_for

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin")
SENDMAIL = shutil.which("sendmail", path="/usr/sbin:/usr/lib:/usr/bin")
POSTCONF = shutil.which("postconf", path="/usr/sbin:/usr/bin")


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
        shutil.copy("/etc/postfix/main.cf", self.conf)
        self._write_master_cf()
        settings = {
            "queue_directory": self.queue,
            "data_directory": self.data,
            "maillog_file": self.maillog,
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
        self.running = False

    def _write_master_cf(self):
        """Debian's master.cf without the SMTP listener and without chroot
        (a chroot would need copies of /etc files in the queue directory)."""
        out = []
        with open("/etc/postfix/master.cf") as f:
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

    def queue_ids_delivered(self):
        return re.findall(r"status=sent", self.log())

    def stop(self):
        if self.running:
            pid = self.master_pid()
            self.postfix("stop", check=False)
            if pid:
                def gone():
                    try:
                        os.kill(pid, 0)
                        return False
                    except ProcessLookupError:
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
