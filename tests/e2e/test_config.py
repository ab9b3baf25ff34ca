"""ternd's command line and configuration file: bad files are refused at
start naming file, line and key; --check-config says the same without
starting; good values take effect."""

import re
import subprocess

import pytest

from ternlib import TERND, LmtpConn

RUN_TIMEOUT = 10


def ternd_run(*args):
    return subprocess.run([TERND, *args], capture_output=True, timeout=RUN_TIMEOUT,
                          stdin=subprocess.DEVNULL)


def write_conf(tmp_path, lines, data=None):
    """A config that would otherwise start (listeners off), plus `lines`.
    Returns (path, number of the first of `lines`)."""
    data = data or tmp_path / "data"
    base = [
        "# Tern test configuration",
        "",
        f"data_dir = {data}",
        "lmtp_listen =",
        "imap_listen =",
        "pop3_listen =",
        "admin_listen =",
    ]
    # No key twice: whether a repeated key is allowed is not what these test.
    keys = {l.split("=")[0].strip() for l in lines if "=" in l}
    base = [l for l in base if l.split("=")[0].strip() not in keys]
    path = tmp_path / "ternd.conf"
    path.write_text("\n".join(base + list(lines)) + "\n")
    return str(path), len(base) + 1


BAD_VALUES = [
    ("bogus_key = 1", "bogus_key"),
    ("max_message_size = 12Q", "max_message_size"),
    ("max_message_size = 5G", "max_message_size"),          # above the ceiling
    ("max_message_size = -1", "max_message_size"),
    ("shutdown_timeout = 5x", "shutdown_timeout"),
    ("shutdown_timeout = soon", "shutdown_timeout"),
    ("shutdown_timeout = 10 parsecs", "shutdown_timeout"),
    ("max_line_length = 10", "max_line_length"),            # below the minimum
    ("max_connections = lots", "max_connections"),
    ("max_bad_commands = 0x", "max_bad_commands"),
    ("max_recipients = 99999999999999999999", "max_recipients"),
    ("log_level = loud", "log_level"),
    ("lmtp_listen = no-port-here", "lmtp_listen"),
    ("lmtp_listen = 127.0.0.1:99999", "lmtp_listen"),
]


@pytest.mark.parametrize("line,key", BAD_VALUES)
def test_bad_config_refused_at_start(tmp_path, line, key):
    path, lineno = write_conf(tmp_path, ["node_name = n1", line])
    lineno += 1
    proc = ternd_run("--config", path)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, f"ternd started with {line!r}: {err}"
    assert f"{path}:{lineno}" in err, f"error must name {path}:{lineno}: {err!r}"
    assert key in err, f"error must name the key {key!r}: {err!r}"


@pytest.mark.parametrize("line,key", BAD_VALUES[:5])
def test_check_config_refuses_bad_file(tmp_path, line, key):
    path, lineno = write_conf(tmp_path, [line])
    proc = ternd_run("--check-config", "--config", path)
    err = proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")
    assert proc.returncode != 0, err
    assert f"{path}:{lineno}" in err and key in err, err


def test_line_without_equals_refused(tmp_path):
    path, lineno = write_conf(tmp_path, ["just some words"])
    proc = ternd_run("--check-config", "--config", path)
    assert proc.returncode != 0
    assert f"{path}:{lineno}" in proc.stderr.decode(errors="replace")


def test_check_config_accepts_good_file(tmp_path):
    path, _ = write_conf(tmp_path, [
        "# sizes and durations in documented forms",
        "node_name = node7",
        "domains = example.org, example.net",
        "max_message_size = 50M",
        "max_line_length = 100k",
        "max_connections = 500",
        "max_bad_commands = 5",
        "max_recipients = 100",
        "shutdown_timeout = 250ms",
        "log_level = debug",
        "",
        "   # an indented comment",
    ])
    proc = ternd_run("--check-config", "--config", path)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


@pytest.mark.parametrize("value", ["2m", "1h", "30", "5s"])
def test_check_config_accepts_durations(tmp_path, value):
    path, _ = write_conf(tmp_path, [f"shutdown_timeout = {value}"])
    proc = ternd_run("--check-config", "--config", path)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def test_missing_config_file(tmp_path):
    path = str(tmp_path / "nope.conf")
    proc = ternd_run("--config", path)
    assert proc.returncode != 0
    assert path in proc.stderr.decode(errors="replace")


def test_unknown_option(tmp_path):
    proc = ternd_run("--no-such-option")
    assert proc.returncode != 0
    assert proc.stderr.strip(), "an unknown option must be explained on stderr"


def test_help_and_version():
    proc = ternd_run("--help")
    assert proc.returncode == 0
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    assert "--config" in out and "--check-config" in out, out
    proc = ternd_run("--version")
    assert proc.returncode == 0
    assert re.search(r"\d+\.\d+", (proc.stdout + proc.stderr).decode(errors="replace"))


def test_size_suffix_takes_effect(make_ternd):
    """100k is 100 * 1024 bytes: LHLO advertises it and MAIL SIZE= obeys it."""
    node = make_ternd(max_message_size="100k", users=())
    with LmtpConn(node.lmtp_addr) as c:
        r = c.lhlo()
        assert any(line[4:] == "SIZE 102400" for line in r.lines), r.lines
        assert c.cmd("MAIL FROM:<a@b.test> SIZE=102401").code == 552
        c.expect("MAIL FROM:<a@b.test> SIZE=102400", 250)


def test_bad_config_on_running_port_does_not_start(make_ternd, tmp_path):
    """A second ternd on the same LMTP port must fail to start, not hang."""
    node = make_ternd(users=())
    path, _ = write_conf(tmp_path, [f"lmtp_listen = 127.0.0.1:{node.lmtp_port}"],
                         data=tmp_path / "data2")
    proc = ternd_run("--config", path)
    assert proc.returncode != 0
    assert str(node.lmtp_port) in proc.stderr.decode(errors="replace")
