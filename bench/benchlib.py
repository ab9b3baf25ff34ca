#!/usr/bin/env python3
"""Helper for bench/run.sh: /proc CPU snapshots of one ternd process and the
comparison table (Tern vs Dovecot) from the key=value result lines that
lmtp-load --out, imap-load --out, run.sh and run-dovecot-baseline.sh write.

  benchlib.py snap PID                 JSON snapshot (process CPU, machine busy, load)
  benchlib.py cpudiff A.json B.json    key=value line, same keys as the Dovecot script
  benchlib.py pss PID                  Pss and Rss (KiB) of one process
  benchlib.py report RESDIR            markdown tables from RESDIR/*.txt
"""
import json
import os
import statistics
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


def imap_report(servers, dcs, out):
    """IMAP rows (only if the imap phase ran)."""
    any_imap = any(d['tool'] in ('imap', 'mem') for rows in servers.values() for d in rows)
    if not any_imap:
        return
    order = ['tern'] + dcs
    out.append('### IMAP, user0 with 20,000 x 4 KiB messages; idle connections')
    out.append('')
    out.append('| server | test | N | SELECT p50 ms | SELECT max ms | LOGIN p50 ms | meta FETCH s | '
               'body FETCH s | body MB/s | bytes exact |')
    out.append('|---|---|---|---|---|---|---|---|---|---|')
    for srv in order:
        rows = servers.get(srv, [])
        labels = []
        for d in rows:
            if d['tool'] == 'imap' and d.get('label') not in labels:
                labels.append(d.get('label'))
        for label in labels:
            g = [d for d in rows if d['tool'] == 'imap' and d.get('label') == label]
            def f(key, nd=2):
                v = [float(d[key]) for d in g if key in d]
                return fmt(med(v), nd) if v else '-'
            exact = '-'
            if g[0].get('mode') == 'fetch-all':
                exact = 'yes' if all(d.get('size_match') == '1' for d in g) else 'NO'
            out.append(f"| {srv} | {label} | {len(g)} | {f('select_p50_ms')} | {f('select_max_ms')} | "
                       f"{f('login_p50_ms')} | {f('meta_s', 3)} | {f('body_s', 3)} | {f('body_mb_s', 1)} | {exact} |")
    out.append('')
    out.append('| server | test | N | conns | PSS KiB/conn | RSS KiB/conn | setup conn/s |')
    out.append('|---|---|---|---|---|---|---|')
    for srv in order:
        g = [d for d in servers.get(srv, []) if d['tool'] == 'mem']
        if not g:
            continue
        def f(key, nd=1):
            v = [float(d[key]) for d in g if key in d]
            return fmt(med(v), nd) if v else '-'
        out.append(f"| {srv} | {g[0].get('label')} | {len(g)} | {g[-1].get('conns')} | "
                   f"{f('pss_per_conn_kb')} | {f('rss_per_conn_kb')} | {f('setup_cps')} |")
    out.append('')


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
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
