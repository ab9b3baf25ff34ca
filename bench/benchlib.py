#!/usr/bin/env python3
"""Helper for bench/run.sh: /proc CPU snapshots of one ternd process and the
comparison table (Tern vs Dovecot) from the key=value result lines that
lmtp-load --out, imap-load --out, run.sh and run-dovecot-baseline.sh write.

  benchlib.py snap PID                 JSON snapshot (process CPU, machine busy, load)
  benchlib.py cpudiff A.json B.json    key=value line, same keys as the Dovecot script
  benchlib.py pss PID                  Pss and Rss (KiB) of one process
  benchlib.py report RESDIR            markdown tables from RESDIR/*.txt
  benchlib.py idlecheck IMAP_PORT LMTP_PORT USERNUM DOMAIN LMTP_LOAD
      one new IMAP session (LOGIN, SELECT INBOX, IDLE) of user<USERNUM>, then
      one message delivered to that user with LMTP_LOAD; key=value line with
      LOGIN/SELECT ms and how long until IDLE reported the new EXISTS
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HZ = os.sysconf('SC_CLK_TCK')


def proc_cpu(pid):
    """(user, sys) seconds of pid, all threads, plus reaped children."""
    with open(f'/proc/{pid}/stat') as f:
        s = f.read()
    rest = s[s.rindex(')') + 2:].split()
    ut, st, cut, cst = (int(x) for x in rest[11:15])
    return (ut + cut) / HZ, (st + cst) / HZ


def machine_busy():
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / HZ, sum(v) / HZ


def snap(pid):
    u, s = proc_cpu(pid)
    busy, total = machine_busy()
    with open('/proc/loadavg') as f:
        load1 = float(f.read().split()[0])
    return {'srv': u + s, 'srv_user': u, 'srv_sys': s, 'busy': busy, 'total': total,
            't': time.time(), 'load1': load1}


def cpudiff(a, b):
    wall = b['t'] - a['t']
    srv = b['srv'] - a['srv']
    busy = b['busy'] - a['busy']
    return (f"srv_cpu_s={srv:.2f} srv_user_s={b['srv_user'] - a['srv_user']:.2f} "
            f"srv_sys_s={b['srv_sys'] - a['srv_sys']:.2f} wall_s={wall:.2f} "
            f"srv_pct={100 * srv / wall:.1f} busy_pct={100 * busy / wall:.1f} "
            f"load1={a['load1']:.2f}")


def kv_status(path):
    d = {}
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 2 and p[0].endswith(':') and p[1].isdigit():
                    d[p[0][:-1]] = int(p[1])
    except OSError:
        pass
    return d


# ------------------------------------------------------------------ report
def read_rows(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                if line.startswith('#'):
                    continue
                d = dict(kv.split('=', 1) for kv in line.split() if '=' in kv)
                if 'tool' in d:
                    rows.append(d)
    except OSError:
        pass
    return rows


def med(vals):
    vals = sorted(vals)
    if not vals:
        return None
    return statistics.median(vals), vals[0], vals[-1]


def fmt(t, nd=1, spread=True):
    if t is None:
        return 'n/a'
    m, lo, hi = t
    if not spread or len([lo, hi]) == 0 or (f'{lo:.{nd}f}' == f'{hi:.{nd}f}'):
        return f'{m:.{nd}f}'
    return f'{m:.{nd}f} ({lo:.{nd}f}-{hi:.{nd}f})'


LMTP_LABELS = [('lmtp-4k-c1-primed', '4 KiB, 1 conn'),
               ('lmtp-4k-c4-primed', '4 KiB, 4 conns'),
               ('lmtp-4k-c16-primed', '4 KiB, 16 conns'),
               ('lmtp-64k-c16-primed', '64 KiB, 16 conns')]


def lmtp_stats(rows, label):
    """Per-run figures for one server/label, in run order."""
    lm = [d for d in rows if d['tool'] == 'lmtp' and d.get('label') == label]
    cpu = [d for d in rows if d['tool'] == 'cpu' and d.get('label') == label]
    stop = [d for d in rows if d['tool'] == 'stop' and d.get('label') == label]
    if not lm:
        return None
    st = {'n': len(lm),
          'msgs_s': [float(d['msgs_s']) for d in lm],
          'mb_s': [float(d['mb_s']) for d in lm],
          'p50': [float(d['p50_ms']) for d in lm],
          'p99': [float(d['p99_ms']) for d in lm],
          'bad': sum(int(d['non250']) + int(d.get('connerr', 0)) + (int(d['messages']) - int(d['ok']))
                     for d in lm),
          'cli_pct': [(float(d['cli_user']) + float(d['cli_sys'])) / float(d['secs']) * 100 for d in lm],
          'srv_ms': [float(c['srv_cpu_s']) * 1000 / float(lm[0]['messages']) for c in cpu],
          'srv_pct': [float(c['srv_pct']) for c in cpu],
          'busy_pct': [float(c['busy_pct']) for c in cpu],
          'load1': [float(c['load1']) for c in cpu if 'load1' in c],
          'stop_s': [float(s['stop_s']) for s in stop],
          'stop_cpu_ms': [float(s['stop_cpu_s']) * 1000 / float(lm[0]['messages']) for s in stop
                          if 'stop_cpu_s' in s]}
    # server CPU per message including the deferred work (final checkpoint at stop)
    st['srv_all_ms'] = ([a + b for a, b in zip(st['srv_ms'], st['stop_cpu_ms'])]
                        if len(st['stop_cpu_ms']) == len(st['srv_ms']) and st['stop_cpu_ms'] else [])
    # "other" = machine busy not explained by server + client (other jobs, softirq)
    st['other_pct'] = [b - s - c for b, s, c in zip(st['busy_pct'], st['srv_pct'], st['cli_pct'])]
    return st


def report(resdir):
    files = sorted(f for f in os.listdir(resdir) if f.endswith('.txt'))
    servers = {}
    for f in files:
        name = f[:-4]
        servers[name] = read_rows(os.path.join(resdir, f))
    if 'tern' not in servers:
        print(f'no tern.txt in {resdir}')
        return
    dcs = sorted(k for k in servers if k.startswith('dovecot-'))
    out = []
    out.append('Figures: median over runs, (min-max) in brackets. Ratio = Tern median / Dovecot median; '
               'paired = min-max of the per-run ratios (Tern run r vs Dovecot run r, measured back to back).')
    out.append('')
    for dc in dcs or [None]:
        fmtname = dc[len('dovecot-'):] if dc else '(not measured)'
        out.append(f'### LMTP, Tern vs Dovecot {fmtname} (primed store, 20,000 messages, 1000 users)')
        out.append('')
        out.append('| point | N | Tern msgs/s | Dovecot msgs/s | **ratio** (paired) | '
                   'Tern p50 / p99 ms | Dovecot p50 / p99 ms | Tern srv CPU ms/msg | Dovecot srv CPU ms/msg | '
                   'non-250 T/D |')
        out.append('|---|---|---|---|---|---|---|---|---|---|')
        for label, title in LMTP_LABELS:
            t = lmtp_stats(servers['tern'], label)
            d = lmtp_stats(servers[dc], label) if dc else None
            if t is None and d is None:
                continue
            ratio = 'n/a'
            if t and d:
                r = statistics.median(t['msgs_s']) / statistics.median(d['msgs_s'])
                pr = [a / b for a, b in zip(t['msgs_s'], d['msgs_s'])]
                ratio = f'**{r:.2f}**' + (f' ({min(pr):.2f}-{max(pr):.2f})' if pr else '')
            n = f"{t['n'] if t else 0}/{d['n'] if d else 0}"
            def lat(s):
                return 'n/a' if s is None else f"{fmt(med(s['p50']), 2, False)} / {fmt(med(s['p99']), 1)}"
            out.append(f"| {title} | {n} | {fmt(med(t['msgs_s'])) if t else 'n/a'} | "
                       f"{fmt(med(d['msgs_s'])) if d else 'n/a'} | {ratio} | {lat(t)} | {lat(d)} | "
                       f"{fmt(med(t['srv_ms']), 2) if t else 'n/a'} | {fmt(med(d['srv_ms']), 2) if d else 'n/a'} | "
                       f"{t['bad'] if t else '-'}/{d['bad'] if d else '-'} |")
        out.append('')
    out.append('### Where the CPU went (medians; % of one core, the machine has '
               f'{os.cpu_count()} CPUs)')
    out.append('')
    out.append('| server | point | MB/s | server CPU % | client CPU % | machine busy % | other % | '
               'load1 at start | Tern stop s (final checkpoint) | srv CPU ms/msg incl. stop |')
    out.append('|---|---|---|---|---|---|---|---|---|---|')
    for srv in ['tern'] + dcs:
        for label, title in LMTP_LABELS:
            s = lmtp_stats(servers[srv], label)
            if s is None:
                continue
            stop = fmt(med(s['stop_s']), 2) if s['stop_s'] else '-'
            out.append(f"| {srv} | {title} | {fmt(med(s['mb_s']), 2, False)} | {fmt(med(s['srv_pct']), 0)} | "
                       f"{fmt(med(s['cli_pct']), 1, False)} | {fmt(med(s['busy_pct']), 0)} | "
                       f"{fmt(med(s['other_pct']), 0)} | {fmt(med(s['load1']), 2)} | {stop} | "
                       f"{fmt(med(s['srv_all_ms']), 2) if s['srv_all_ms'] else '-'} |")
    out.append('')
    imap_report(servers, dcs, out)
    print('\n'.join(out))


IMAP_ROWS = [  # label, tool, key, title, digits
    ('select-first-after-delivery', 'imap', 'select_p50_ms', 'first SELECT after bulk delivery, ms', 2),
    ('select-cold', 'imap', 'select_p50_ms', 'SELECT cold (restart + evicted), ms', 2),
    ('select-warm', 'imap', 'select_p50_ms', 'SELECT warm, p50 of 20, ms', 2),
    ('select-warm', 'imap', 'select_max_ms', 'SELECT warm, max of 20, ms', 2),
    ('select-warm', 'imap', 'login_p50_ms', 'LOGIN, p50 of 20, ms', 2),
    ('fetch-cold', 'imap', 'meta_s', 'FETCH 1:* (UID FLAGS RFC822.SIZE) cold, s', 3),
    ('fetch-cold', 'imap', 'body_s', 'FETCH 1:* BODY.PEEK[] cold, s', 3),
    ('fetch-warm', 'imap', 'meta_s', 'FETCH 1:* (UID FLAGS RFC822.SIZE) warm, s', 3),
    ('fetch-warm', 'imap', 'body_s', 'FETCH 1:* BODY.PEEK[] warm, s', 3),
    ('fetch-warm', 'cpu', 'srv_cpu_s', 'server CPU for the warm fetch-all, s', 2),
    ('pop3-warm', 'pop3', 'retr_s', 'POP3 RETR 1..N warm (not a goal), s', 3),
]


def vals(rows, tool, label, key):
    return [float(d[key]) for d in rows if d['tool'] == tool and d.get('label') == label and key in d]


def imap_report(servers, dcs, out):
    """IMAP rows (only if the imap phase ran): times, ratios, memory."""
    any_imap = any(d['tool'] in ('imap', 'mem') for rows in servers.values() for d in rows)
    if any_imap:
        t = servers['tern']
        for dc in dcs or [None]:
            d = servers[dc] if dc else []
            name = dc[len('dovecot-'):] if dc else '(not measured)'
            out.append(f'### IMAP, user0 with 20,000 x 4 KiB messages: Tern vs Dovecot {name}')
            out.append('')
            out.append('Times: lower is better. **speed-up** = Dovecot median / Tern median '
                       '(above 1 = Tern faster; goal: at least 1).')
            out.append('')
            out.append('| test | N T/D | Tern | Dovecot | **speed-up** | bytes exact T/D |')
            out.append('|---|---|---|---|---|---|')
            for label, tool, key, title, nd in IMAP_ROWS:
                tv, dv = vals(t, tool, label, key), vals(d, tool, label, key)
                if not tv and not dv:
                    continue
                ratio = 'n/a'
                if tv and dv and statistics.median(tv) > 0:
                    ratio = f'**{statistics.median(dv) / statistics.median(tv):.2f}**'
                exact = ''
                if key == 'body_s':
                    def ex(rows):
                        g = [x for x in rows if x['tool'] == 'imap' and x.get('label') == label]
                        return '-' if not g else ('yes' if all(x.get('size_match') == '1' for x in g) else 'NO')
                    exact = f'{ex(t)}/{ex(d)}'
                out.append(f'| {title} | {len(tv)}/{len(dv)} | {fmt(med(tv), nd)} | {fmt(med(dv), nd)} | '
                           f'{ratio} | {exact} |')
            out.append('')
            tm = [x for x in t if x['tool'] == 'mem']
            dm = [x for x in d if x['tool'] == 'mem']
            if tm or dm:
                out.append(f'### Memory per idle IMAP connection (LOGIN + SELECT INBOX + IDLE), Tern vs Dovecot {name}')
                out.append('')
                out.append('**ratio** = Tern / Dovecot PSS per connection (goal: 0.10 or less).')
                out.append('')
                out.append('| server | sessions | N | PSS KiB/conn | RSS KiB/conn | setup conn/s |')
                out.append('|---|---|---|---|---|---|')
                for srv, g in (('Tern (ternd, 1 process)', tm), (f'Dovecot {name} (all processes)', dm)):
                    if not g:
                        continue
                    def f(key, nd=1):
                        v = [float(x[key]) for x in g if key in x]
                        return fmt(med(v), nd) if v else '-'
                    out.append(f"| {srv} | {g[-1].get('conns')} | {len(g)} | {f('pss_per_conn_kb')} | "
                               f"{f('rss_per_conn_kb')} | {f('setup_cps', 0)} |")
                tp = [float(x['pss_per_conn_kb']) for x in tm]
                dp = [float(x['pss_per_conn_kb']) for x in dm]
                if tp and dp:
                    out.append('')
                    out.append(f'PSS ratio Tern/Dovecot: **{statistics.median(tp) / statistics.median(dp):.3f}**')
                out.append('')
    t = servers['tern']
    k = [x for x in t if x['tool'] == 'idle10k']
    if k:
        out.append('### Tern: one node, many concurrent idle IMAP sessions (idle10k)')
        out.append('')
        out.append('| target | idling | failed | setup s | ternd RSS MiB | ternd PSS MiB | PSS KiB/conn | '
                   'ternd fds | RLIMIT_NOFILE |')
        out.append('|---|---|---|---|---|---|---|---|---|')
        for x in k:
            out.append(f"| {x.get('target')} | {x.get('idling')} | {x.get('failed')} | {x.get('setup_s')} | "
                       f"{int(x.get('after_rss_kb', 0)) / 1024:.0f} | {int(x.get('after_pss_kb', 0)) / 1024:.0f} | "
                       f"{x.get('pss_per_conn_kb')} | {x.get('fds')} | {x.get('nofile')} |")
        out.append('')
        for x in t:
            if x['tool'] == 'note' and x.get('label') == 'idle10k-login-at-limit':
                out.append(f"Fresh LOGIN at the limit: rc={x.get('rc')} {x.get('reply', '')}")
                out.append('')
        c = [x for x in t if x['tool'] == 'idle10k-checks']
        if c:
            out.append('| sessions idling during the checks | 1 msg to each of N idle users: sessions notified | '
                       'new IDLE session: delivery seen after (incl. LMTP) | fresh LOGIN+SELECT x5 |')
            out.append('|---|---|---|---|')
            for x in c:
                chk = (f"{x.get('check_idle_notify_ms')} ms" if x.get('idlecheck') == 'ok'
                       else f"failed: {x.get('check_error', '?')}")
                lg = [y for y in t if y['tool'] == 'imap' and y.get('label') == 'login-at-idle10k']
                lgs = (f"ok, LOGIN p50 {lg[-1].get('login_p50_ms')} ms, SELECT p50 {lg[-1].get('select_p50_ms')} ms"
                       if x.get('fresh_login_rc') == '0' and lg else f"FAILED (rc {x.get('fresh_login_rc')})")
                out.append(f"| {x.get('idling')} | {x.get('notified')}/{x.get('delivered_to_idle')} | {chk} | {lgs} |")
            out.append('')


# ------------------------------------------------------------------ idlecheck
class Lines:
    """CRLF lines from a socket (no literals expected in these replies)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b''

    def line(self):
        while b'\r\n' not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError('connection closed')
            self.buf += d
        ln, self.buf = self.buf.split(b'\r\n', 1)
        return ln.decode('utf-8', 'replace')


def imap_cmd(sock, rd, tag, cmd):
    """Send one command; (ok, last line, untagged lines)."""
    sock.sendall(f'{tag} {cmd}\r\n'.encode())
    untagged = []
    while True:
        ln = rd.line()
        if ln.startswith(tag + ' '):
            return ln[len(tag) + 1:].upper().startswith('OK'), ln, untagged
        untagged.append(ln)


def idlecheck(imap_port, lmtp_port, usernum, domain, lmtp_load):
    out = {'idlecheck': 'fail'}
    user = f'user{usernum}@{domain}'
    try:
        t0 = time.monotonic()
        sock = socket.create_connection(('127.0.0.1', imap_port), timeout=30)
        rd = Lines(sock)
        greet = rd.line()
        if not greet.startswith('* OK'):
            raise RuntimeError(f'greeting: {greet}')
        t1 = time.monotonic()
        ok, ln, _ = imap_cmd(sock, rd, 'a1', f'LOGIN "{user}" "pass"')
        t2 = time.monotonic()
        out['check_login_ms'] = f'{(t2 - t1) * 1000:.2f}'
        if not ok:
            raise RuntimeError(f'LOGIN: {ln}')
        ok, ln, unt = imap_cmd(sock, rd, 'a2', 'SELECT INBOX')
        t3 = time.monotonic()
        out['check_select_ms'] = f'{(t3 - t2) * 1000:.2f}'
        if not ok:
            raise RuntimeError(f'SELECT: {ln}')
        exists = [int(u.split()[1]) for u in unt if u.upper().endswith(' EXISTS')][-1]
        sock.sendall(b'a3 IDLE\r\n')
        while not rd.line().startswith('+'):
            pass
        t4 = time.monotonic()
        r = subprocess.run([lmtp_load, '--port', str(lmtp_port), '--conns', '1', '--messages', '1',
                            '--size', '4096', '--users', '1', '--user-base', str(usernum),
                            '--domain', domain, '--quiet'], capture_output=True, timeout=60)
        t5 = time.monotonic()
        out['check_lmtp_ms'] = f'{(t5 - t4) * 1000:.2f}'
        if r.returncode != 0:
            raise RuntimeError(f'lmtp-load rc={r.returncode}')
        sock.settimeout(10)
        while True:
            ln = rd.line()
            p = ln.split()
            if len(p) == 3 and p[0] == '*' and p[2].upper() == 'EXISTS' and int(p[1]) > exists:
                break
        t6 = time.monotonic()
        # from the start of the LMTP transaction (incl. starting lmtp-load)
        out['check_idle_notify_ms'] = f'{(t6 - t4) * 1000:.2f}'
        sock.sendall(b'DONE\r\n')
        while not rd.line().startswith('a3 '):
            pass
        imap_cmd(sock, rd, 'a4', 'LOGOUT')
        sock.close()
        out['idlecheck'] = 'ok'
        out['check_total_ms'] = f'{(time.monotonic() - t0) * 1000:.1f}'
    except Exception as e:  # report, do not hide: the caller records the line
        out['check_error'] = '"' + str(e).replace(' ', '_')[:200] + '"'
    return ' '.join(f'{k}={v}' for k, v in out.items())


if __name__ == '__main__':
    cmd = sys.argv[1] if len(sys.argv) > 1 else ''
    if cmd == 'snap':
        print(json.dumps(snap(int(sys.argv[2]))))
    elif cmd == 'cpudiff':
        with open(sys.argv[2]) as fa, open(sys.argv[3]) as fb:
            print(cpudiff(json.load(fa), json.load(fb)))
    elif cmd == 'pss':
        pid = sys.argv[2]
        r = kv_status(f'/proc/{pid}/smaps_rollup')
        s = kv_status(f'/proc/{pid}/status')
        print(f"pss_kb={r.get('Pss', 0)} rss_kb={s.get('VmRSS', 0)}")
    elif cmd == 'report':
        report(sys.argv[2])
    elif cmd == 'idlecheck':
        print(idlecheck(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]))
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
