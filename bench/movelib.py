#!/usr/bin/env python3
"""Helper for bench/move.sh (issue 10, mailbox moves).

  movelib.py move --ternctl T --conf C --user U --to NODE --log DESTLOG ...
      one timed move: `ternctl move start`, then `move status --json` every
      --poll s until the phase is terminal; the destination's log line
      "move N: user=U now homed here (unavailable W ms: freeze .., fence .., last round ..
      (C changes, applied in ..), checksums .., switch .., release ..; R rounds, B bytes)"
      gives W, R and B. Appends a tool=tmove key=value line.
  movelib.py window --ternctl T --conf-a .. --conf-b .. --log-a .. --log-b ..
      --lmtp-a P --lmtp-b P --user U --moves N --clients K
      K LMTP clients (half through each node, one persistent connection
      each, reconnecting on a closed connection) deliver 4 KiB messages to U
      without pause while U is moved N times, alternating; appends one
      tool=wmove line per move and one tool=wlmtp line for the clients.
  movelib.py report RESDIR
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

TERMINAL = ('completed', 'failed', 'cancelled')
HOMED = re.compile(r'move (\d+): user=(\S+) now homed here \(unavailable (\d+) ms: .*?; (\d+) rounds, (\d+) bytes\)')
GOAL_RATIO = 0.25        # Tern time / Dovecot time, at most
GOAL_P99_MS = 50.0
GOAL_NONE_NS = 5.0
GOAL_FROZEN_NS = 100.0


def ctl(ternctl, conf, *args, json_out=False, timeout=60):
    cmd = [ternctl, '--config', conf] + (['--json'] if json_out else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc={r.returncode} {r.stderr.strip()}")
    return json.loads(r.stdout) if json_out else r.stdout


def move_status(ternctl, conf, user):
    rows = ctl(ternctl, conf, 'move', 'status', user, json_out=True)
    if isinstance(rows, dict):
        rows = next((v for v in rows.values() if isinstance(v, list)), [rows])
    return rows[-1] if rows else None


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def homed_lines(path, offset, user):
    """[(move id, W ms, rounds, bytes)] for user in path after offset."""
    out = []
    try:
        with open(path, 'rb') as f:
            f.seek(offset)
            text = f.read().decode('utf-8', 'replace')
    except OSError:
        return out
    for m in HOMED.finditer(text):
        if m.group(2).split('@')[0] == user.split('@')[0]:
            out.append((int(m.group(1)), int(m.group(3)), int(m.group(4)), int(m.group(5))))
    return out


def timed_move(ternctl, conf, user, to, destlog, poll, deadline=600):
    """(secs, status row, [homed lines]) of one move of user to `to`."""
    off = log_size(destlog)
    t0 = time.monotonic()
    ctl(ternctl, conf, 'move', 'start', user, '--to', to)
    st = None
    while time.monotonic() - t0 < deadline:
        st = move_status(ternctl, conf, user)
        if st and st.get('phase') in TERMINAL and st.get('to', to) == to:
            break
        time.sleep(poll)
    secs = time.monotonic() - t0
    homed = []
    for _ in range(50):   # the line is written before the phase changes; be safe
        homed = homed_lines(destlog, off, user)
        if homed:
            break
        time.sleep(0.02)
    return secs, st, homed


def cmd_move(a):
    secs, st, homed = timed_move(a.ternctl, a.conf, a.user, a.to, a.log, a.poll)
    phase = st.get('phase') if st else 'unknown'
    w, rounds, nbytes = (homed[-1][1], homed[-1][2], homed[-1][3]) if homed else (-1, -1, -1)
    payload = a.msgs * 4096
    line = (f"tool=tmove label={a.label} run={a.run} from={a.from_} to={a.to} phase={phase} "
            f"secs={secs:.3f} msgs={a.msgs} payload_b={payload} moved_b={nbytes} rounds={rounds} "
            f"window_ms={w} payload_mb_s={payload / 1e6 / secs:.1f} "
            f"moved_mb_s={(nbytes / 1e6 / secs) if nbytes > 0 else 0:.1f} msgs_s={a.msgs / secs:.1f}")
    print(line)
    with open(a.out, 'a') as f:
        f.write(line + '\n')
    if phase != 'completed':
        print(f"move ended {phase}: {st}", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------ window
class Lmtp:
    def __init__(self, port, timeout=30):
        self.s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.f = self.s.makefile('rb')
        self.reply()
        self.cmd('LHLO bench.test')

    def reply(self):
        lines = []
        while True:
            ln = self.f.readline()
            if not ln:
                raise ConnectionError('closed')
            lines.append(ln)
            if ln[3:4] != b'-':
                return int(ln[:3]), b''.join(lines).decode('utf-8', 'replace').strip()

    def cmd(self, c):
        self.s.sendall(c.encode() + b'\r\n')
        return self.reply()

    def deliver(self, rcpt, body):
        """(code, text) of the first failing step, else of DATA."""
        for c in ('MAIL FROM:<loadgen@sender.test>', f'RCPT TO:<{rcpt}>', 'DATA'):
            code, text = self.cmd(c)
            if c == 'DATA' and code != 354:
                return code, f'{c}: {text}'
            if c != 'DATA' and code >= 400:
                self.cmd('RSET')
                return code, f'{c}: {text}'
        self.s.sendall(body + b'.\r\n')
        return self.reply()

    def close(self):
        try:
            self.s.sendall(b'QUIT\r\n')
        except OSError:
            pass
        self.s.close()


def message(n, tag):
    head = (f'From: <loadgen@sender.test>\r\nTo: <u@example.test>\r\nSubject: window {tag} {n}\r\n'
            f'Message-ID: <w{tag}.{n}.{time.time_ns()}@bench.test>\r\n\r\n')
    pad = 4096 - len(head) - 2
    line = ('x' * 76 + '\r\n')
    body = (line * (pad // len(line) + 1))[:pad - 2] + '\r\n'
    return (head + body).encode()


def client_loop(port, rcpt, tag, stop, stats, lock):
    n = 0
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = Lmtp(port)
            t0 = time.monotonic()
            code, text = conn.deliver(rcpt, message(n, tag))
            dt = (time.monotonic() - t0) * 1000
            n += 1
            with lock:
                stats['lat'].append(dt)
                k = f'{code // 100}xx'
                stats[k] = stats.get(k, 0) + 1
                if code >= 400:
                    stats['errors'].append(f'{tag} {time.strftime("%T")} {code} {text[:160]}')
        except (OSError, ConnectionError) as exc:
            with lock:
                stats['connerr'] += 1
                stats['errors'].append(f'{tag} {time.strftime("%T")} connection: {exc!r}')
            if conn is not None:
                try:
                    conn.s.close()
                except OSError:
                    pass
            conn = None
            time.sleep(0.05)
    if conn is not None:
        conn.close()


def cmd_window(a):
    confs = {'node-a': a.conf_a, 'node-b': a.conf_b}
    logs = {'node-a': a.log_a, 'node-b': a.log_b}
    ports = {'node-a': a.lmtp_a, 'node-b': a.lmtp_b}
    rcpt = f'{a.user}@{a.domain}'
    stop = threading.Event()
    lock = threading.Lock()
    stats = {'lat': [], 'connerr': 0, 'errors': []}
    threads = []
    for k in range(a.clients):
        node = 'node-a' if k % 2 == 0 else 'node-b'
        t = threading.Thread(target=client_loop, args=(ports[node], rcpt, f'{node}-{k}', stop, stats, lock),
                             daemon=True)
        t.start()
        threads.append(t)
    time.sleep(2.0)   # deliveries flowing before the first move
    failures = 0
    t_start = time.monotonic()
    try:
        for i in range(1, a.moves + 1):
            home = ctl(a.ternctl, a.conf_a, 'user', 'show', a.user, json_out=True)['home']
            to = 'node-b' if home == 'node-a' else 'node-a'
            with lock:
                before = sum(v for k, v in stats.items() if k.endswith('xx'))
            secs, st, homed = timed_move(a.ternctl, confs[home], a.user, to, logs[to], 0.1)
            with lock:
                after = sum(v for k, v in stats.items() if k.endswith('xx'))
            phase = st.get('phase') if st else 'unknown'
            w, rounds, nbytes = (homed[-1][1], homed[-1][2], homed[-1][3]) if homed else (-1, -1, -1)
            line = (f'tool=wmove label=window move={i} from={home} to={to} phase={phase} '
                    f'secs={secs:.3f} window_ms={w} rounds={rounds} moved_b={nbytes} '
                    f'deliveries_during={after - before}')
            print(line, flush=True)
            with open(a.out, 'a') as f:
                f.write(line + '\n')
            if phase != 'completed':
                failures += 1
                print(f'move {i} ended {phase}: {st}', file=sys.stderr)
            time.sleep(0.5)   # mail keeps flowing between moves
    finally:
        elapsed = time.monotonic() - t_start
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(40)
    lat = sorted(stats['lat'])
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else -1  # noqa: E731
    line = (f"tool=wlmtp label=window clients={a.clients} moves={a.moves} secs={elapsed:.1f} "
            f"deliveries={len(lat)} r2xx={stats.get('2xx', 0)} r4xx={stats.get('4xx', 0)} "
            f"r5xx={stats.get('5xx', 0)} connerr={stats['connerr']} "
            f"lat_p50_ms={p(0.5):.2f} lat_p99_ms={p(0.99):.2f} lat_max_ms={(lat[-1] if lat else -1):.2f}")
    print(line)
    with open(a.out, 'a') as f:
        f.write(line + '\n')
        for e in stats['errors'][:50]:
            f.write(f'# lmtp error: {e}\n')
    for e in stats['errors'][:20]:
        print(f'lmtp error: {e}', file=sys.stderr)
    return 1 if failures else 0


# ------------------------------------------------------------------ report
def med(v):
    return statistics.median(v) if v else None


def spread(v, nd=2):
    if not v:
        return 'n/a'
    lo, hi, m = min(v), max(v), statistics.median(v)
    if f'{lo:.{nd}f}' == f'{hi:.{nd}f}':
        return f'{m:.{nd}f}'
    return f'{m:.{nd}f} ({lo:.{nd}f}-{hi:.{nd}f})'


def pct(v, q):
    """nearest-rank percentile"""
    s = sorted(v)
    if not s:
        return None
    import math
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


def report(resdir):
    rows = benchlib.read_rows(os.path.join(resdir, 'move.txt'))
    out, verdicts = [], []

    tm = [d for d in rows if d['tool'] == 'tmove' and d.get('label') == 'bulk']
    dm = [d for d in rows if d['tool'] == 'dcmove']
    if tm:
        ok = [d for d in tm if d['phase'] == 'completed']
        secs = [float(d['secs']) for d in ok]
        out.append(f"### 1. One {tm[0]['msgs']} x 4 KiB mailbox moved between two nodes on loopback\n")
        out.append('Tern: `ternctl move start` to phase `completed` (status polled every 50 ms), '
                   'alternating a->b and b->a. Dovecot: `doveadm backup` of user0 to the second '
                   "instance (run-dovecot-baseline.sh's `move` phase), full copy; the Tern and "
                   'Dovecot rounds interleaved. Median (min-max) over runs.\n')
        out.append('| server | method | N | s | payload MB/s | msgs/s | moved bytes (MB) | rounds | unavailable W ms |')
        out.append('|---|---|---|---|---|---|---|---|---|')
        out.append(f"| Tern | `ternctl move start` (copy, sync rounds, freeze, switch, remove old copy) | "
                   f"{len(ok)}/{len(tm)} | {spread(secs, 3)} | "
                   f"{spread([float(d['payload_mb_s']) for d in ok], 1)} | "
                   f"{spread([float(d['msgs_s']) for d in ok], 0)} | "
                   f"{spread([int(d['moved_b']) / 1e6 for d in ok], 1)} | "
                   f"{spread([int(d['rounds']) for d in ok], 0)} | "
                   f"{spread([int(d['window_ms']) for d in ok], 0)} |")
        dsecs = {}
        for lab, name in (('move-full-tcp', 'doveadm backup over TCP to B\'s doveadm server'),
                          ('move-full-local', 'doveadm backup to a local path (B\'s mail dir)')):
            g = [d for d in dm if d['label'] == lab]
            if not g:
                continue
            good = [d for d in g if d['rc'] == '0' and d['dest_msgs'] == d['expect'] and d['status_match'] == '1']
            s = [float(d['secs']) for d in good]
            dsecs[lab] = s
            n = int(tm[0]['msgs'])
            out.append(f"| Dovecot | {name} | {len(good)}/{len(g)} | {spread(s, 3)} | "
                       f"{spread([n * 4096 / 1e6 / x for x in s], 1)} | {spread([n / x for x in s], 0)} | | | |")
        out.append('')
        if dsecs.get('move-full-tcp') and secs:
            r = med(secs) / med(dsecs['move-full-tcp'])
            # paired by round: Tern run r vs Dovecot run r
            tr = {d['run']: float(d['secs']) for d in ok}
            drr = {d['dcrun']: float(d['secs']) for d in dm if d['label'] == 'move-full-tcp' and d['rc'] == '0'}
            pr = [tr[k] / drr[k] for k in sorted(tr) if k in drr]
            out.append(f"**Tern / Dovecot (TCP) time: {r:.3f}** (paired per round: {spread(pr, 3)}); "
                       f"Dovecot / Tern = {1 / r:.1f}x.\n")
            verdicts.append(('move of 20,000 x 4 KiB: Tern time <= 1/4 of Dovecot `doveadm backup` (TCP)',
                             r <= GOAL_RATIO, f'{r:.3f}'))
        elif secs:
            verdicts.append(('move of 20,000 x 4 KiB: Tern time <= 1/4 of Dovecot', None,
                             f'Tern {med(secs):.2f} s, no Dovecot figure'))

    wm = [d for d in rows if d['tool'] == 'wmove']
    wl = [d for d in rows if d['tool'] == 'wlmtp']
    if wm:
        ok = [d for d in wm if d['phase'] == 'completed']
        ws = [int(d['window_ms']) for d in ok if int(d['window_ms']) >= 0]
        p50, p99 = pct(ws, 0.50), pct(ws, 0.99)
        out.append(f'### 2. Unavailable window (freeze to switch), {len(wm)} moves of a user receiving mail\n')
        lmtp = wl[-1] if wl else {}
        out.append(f"user1 moved {len(wm)} times, alternating a->b / b->a, while {lmtp.get('clients', '?')} "
                   'LMTP clients (half through each node, persistent connections, no pause) delivered '
                   '4 KiB messages to it. W = the destination\'s "now homed here (unavailable W ms)". '
                   'With 20 values the p99 is the maximum.\n')
        out.append('| moves completed | W p50 ms | W p99 (= max) ms | W all (sorted) | move s, median (min-max) | '
                   'sync rounds | deliveries | 4xx | 5xx | conn errors | delivery p50 / p99 / max ms |')
        out.append('|---|---|---|---|---|---|---|---|---|---|---|')
        out.append(f"| {len(ok)}/{len(wm)} | **{p50}** | **{p99}** | {' '.join(map(str, sorted(ws)))} | "
                   f"{spread([float(d['secs']) for d in ok], 2)} | {spread([int(d['rounds']) for d in ok], 0)} | "
                   f"{lmtp.get('deliveries', '?')} | **{lmtp.get('r4xx', '?')}** | {lmtp.get('r5xx', '?')} | "
                   f"{lmtp.get('connerr', '?')} | {lmtp.get('lat_p50_ms', '?')} / {lmtp.get('lat_p99_ms', '?')} / "
                   f"{lmtp.get('lat_max_ms', '?')} |\n")
        if ws:
            verdicts.append(('unavailable window p99 < 50 ms', p99 < GOAL_P99_MS, f'p50 {p50} ms, p99 {p99} ms'))
        if lmtp:
            t = int(lmtp['r4xx'])
            verdicts.append(('zero temporary failures seen by the LMTP clients', t == 0,
                             f"{t} x 4xx, {lmtp['r5xx']} x 5xx, {lmtp['connerr']} connection errors "
                             f"in {lmtp['deliveries']} deliveries"))

    fz = {d['case']: d for d in rows if d['tool'] == 'freeze'}
    if fz:
        nf = next((d['frozen'] for d in fz.values() if d['frozen'] != '0'), '?')
        out.append('### 3. The frozen check on the logon/delivery path (bench/freeze-check.c)\n')
        out.append('ns per call, median of reps (min-max), one thread, names rotating over 1024 users.\n')
        out.append('| case | users frozen | call | answer | ns per check |')
        out.append('|---|---|---|---|---|')
        desc = {'none-inline': ('`freeze_none()` (inline atomic load)', 'none frozen'),
                'none-park': ('`freeze_park()`', 'go on (0)'),
                'frozen-other': ('`freeze_park()` of a user not frozen', 'go on (0)'),
                'frozen-status': ('`freeze_status()` of a frozen user (probe + entry lock)', 'frozen (1)'),
                'frozen-park': ('`freeze_park()` of a frozen user: parks; + `freeze_park_cancel()`', 'parked (1)')}
        for c in ('none-inline', 'none-park', 'frozen-other', 'frozen-status', 'frozen-park'):
            if c in fz:
                d = fz[c]
                out.append(f"| {c} | {d['frozen']} | {desc[c][0]} | {desc[c][1]} | "
                           f"**{float(d['ns']):.1f}** ({float(d['ns_min']):.1f}-{float(d['ns_max']):.1f}) |")
        out.append('')
        if 'none-park' in fz:
            v = float(fz['none-park']['ns'])
            verdicts.append(('check with no user frozen < 5 ns', v < GOAL_NONE_NS,
                             f"freeze_park {v:.1f} ns (freeze_none alone {float(fz['none-inline']['ns']):.1f} ns)"))
        if 'frozen-other' in fz:
            v = float(fz['frozen-other']['ns'])
            verdicts.append((f'check with {nf} users frozen < 100 ns', v < GOAL_FROZEN_NS,
                             f'{v:.1f} ns (a user not frozen)'))

    if verdicts:
        out.append('### Against the goals\n')
        out.append('| goal | result | met |')
        out.append('|---|---|---|')
        for name, ok, val in verdicts:
            out.append(f"| {name} | {val} | {'n/a' if ok is None else ('yes' if ok else '**no**')} |")
        out.append('')
    print('\n'.join(out))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == 'report':
        report(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    m = sub.add_parser('move')
    m.add_argument('--ternctl', required=True)
    m.add_argument('--conf', required=True)
    m.add_argument('--user', required=True)
    m.add_argument('--to', required=True)
    m.add_argument('--from', dest='from_', default='?')
    m.add_argument('--log', required=True)
    m.add_argument('--label', default='bulk')
    m.add_argument('--run', default='1')
    m.add_argument('--msgs', type=int, default=20000)
    m.add_argument('--poll', type=float, default=0.05)
    m.add_argument('--out', required=True)
    w = sub.add_parser('window')
    for k in ('ternctl', 'conf-a', 'conf-b', 'log-a', 'log-b', 'user', 'out'):
        w.add_argument('--' + k, required=True)
    w.add_argument('--domain', default='example.test')
    w.add_argument('--lmtp-a', type=int, required=True)
    w.add_argument('--lmtp-b', type=int, required=True)
    w.add_argument('--imap-a', type=int)
    w.add_argument('--moves', type=int, default=20)
    w.add_argument('--clients', type=int, default=4)
    a = ap.parse_args()
    return cmd_move(a) if a.cmd == 'move' else cmd_window(a)


if __name__ == '__main__':
    sys.exit(main())
