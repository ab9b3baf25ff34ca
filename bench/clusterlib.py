#!/usr/bin/env python3
"""Helper for bench/cluster.sh: /proc snapshots of one ternd (CPU as in
benchlib.py, plus the bytes it read and wrote through syscalls, from
/proc/PID/io) and the report (straight to the home node vs through a front
node) from the key=value lines in RESDIR/cluster.txt.

  clusterlib.py snap PID              JSON snapshot
  clusterlib.py diff A.json B.json    key=value line (benchlib's keys + rchar/wchar)
  clusterlib.py report RESDIR         markdown tables
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

GOAL_THROUGHPUT = 0.85   # proxied/straight, at least (the hop costs at most 15%)
GOAL_ADDED_P99_MS = 1.0  # proxied p99 - straight p99, at most


def snap(pid):
    s = benchlib.snap(pid)
    with open(f'/proc/{pid}/io') as f:
        io = dict(line.split(': ') for line in f.read().splitlines())
    s['rchar'] = int(io['rchar'])
    s['wchar'] = int(io['wchar'])
    return s


def diff(a, b):
    return (benchlib.cpudiff(a, b) +
            f" rchar_b={b['rchar'] - a['rchar']} wchar_b={b['wchar'] - a['wchar']}")


# ------------------------------------------------------------------ report
def med(v):
    return statistics.median(v) if v else None


def f(v, nd=2):
    return 'n/a' if v is None else f'{v:.{nd}f}'


def spread(v, nd=2):
    """median (min-max)"""
    if not v:
        return 'n/a'
    lo, hi, m = min(v), max(v), statistics.median(v)
    if f'{lo:.{nd}f}' == f'{hi:.{nd}f}':
        return f'{m:.{nd}f}'
    return f'{m:.{nd}f} ({lo:.{nd}f}-{hi:.{nd}f})'


def by_run(rows, tool, label, key, extra=None):
    """{run: [values]} in the order the lines were written; lines without a
    run= key (the load tools' own) are numbered by their order."""
    out = {}
    k = 0
    for d in rows:
        if d['tool'] != tool or d.get('label') != label or key not in d:
            continue
        if extra and any(d.get(a) != b for a, b in extra.items()):
            continue
        if 'run' in d:
            r = int(d['run'])
        else:
            # imap-load fetch-all writes one line per fetch (round=1..K) per
            # session; a session is one run
            if 'round' not in d or d['round'] == '1':
                k += 1
            r = k
        out.setdefault(r, []).append(float(d[key]))
    return out


def flat(runs):
    return [x for v in runs.values() for x in v]


def per_run_med(runs):
    return {r: statistics.median(v) for r, v in runs.items()}


def paired(a, b, op):
    """op(b_run, a_run) for the runs both have."""
    return [op(b[r], a[r]) for r in sorted(set(a) & set(b))]


def report(resdir):
    rows = benchlib.read_rows(os.path.join(resdir, 'cluster.txt'))
    out = []
    ratio = lambda p, s: p / s  # noqa: E731
    minus = lambda p, s: p - s  # noqa: E731
    verdicts = []

    # ---- LMTP
    lab = sorted({d['label'] for d in rows if d['tool'] == 'lmtp'})
    st = next((x for x in lab if x.endswith('-straight')), None)
    px = next((x for x in lab if x.endswith('-proxied')), None)
    if st and px:
        rate = {m: per_run_med(by_run(rows, 'lmtp', x, 'msgs_s')) for m, x in (('s', st), ('p', px))}
        p50 = {m: per_run_med(by_run(rows, 'lmtp', x, 'p50_ms')) for m, x in (('s', st), ('p', px))}
        p99 = {m: per_run_med(by_run(rows, 'lmtp', x, 'p99_ms')) for m, x in (('s', st), ('p', px))}
        msgs = next(int(d['messages']) for d in rows if d['tool'] == 'lmtp' and d['label'] == st)
        bad = sum(int(d['non250']) + int(d.get('connerr', 0)) + int(d['messages']) - int(d['ok'])
                  for d in rows if d['tool'] == 'lmtp' and d['label'] in (st, px))
        cpu = {}
        for m, x in (('s', st), ('p', px)):
            for n in 'ab':
                cpu[m + n] = [v * 1000 / msgs for v in
                              flat(by_run(rows, 'cpu', x, 'srv_cpu_s', {'node': n}))]
        conns = next(d['conns'] for d in rows if d['tool'] == 'lmtp' and d['label'] == st)
        out.append(f'### LMTP, {msgs} x 4 KiB over {conns} connections, 1000 users homed on node-a '
                   f'(primed store)\n')
        out.append('Median over runs (min-max). Ratio = proxied / straight; paired = min-max of '
                   'the per-round ratios (the two paths measured back to back).\n')
        out.append('| path | N | msgs/s | p50 ms | p99 ms | node-a CPU ms/msg | node-b CPU ms/msg |')
        out.append('|---|---|---|---|---|---|---|')
        out.append(f"| straight to node-a | {len(rate['s'])} | {spread(list(rate['s'].values()), 1)} | "
                   f"{spread(list(p50['s'].values()))} | {spread(list(p99['s'].values()))} | "
                   f"{spread(cpu['sa'], 3)} | {spread(cpu['sb'], 3)} |")
        out.append(f"| through node-b | {len(rate['p'])} | {spread(list(rate['p'].values()), 1)} | "
                   f"{spread(list(p50['p'].values()))} | {spread(list(p99['p'].values()))} | "
                   f"{spread(cpu['pa'], 3)} | {spread(cpu['pb'], 3)} |")
        r_med = med(list(rate['p'].values())) / med(list(rate['s'].values()))
        r_pair = paired(rate['s'], rate['p'], ratio)
        d99 = med(list(p99['p'].values())) - med(list(p99['s'].values()))
        d99_pair = paired(p99['s'], p99['p'], minus)
        d50 = med(list(p50['p'].values())) - med(list(p50['s'].values()))
        out.append(f"| **proxied / straight** | | **{r_med:.3f}** (paired {spread(r_pair, 3)}) | "
                   f"+{d50:.2f} | **{d99:+.2f}** (paired {spread(d99_pair)}) | | |")
        out.append(f'\nnon-250 replies or lost messages: {bad}\n')
        verdicts.append(('LMTP throughput through the front >= 85% of straight',
                         r_med >= GOAL_THROUGHPUT, f'{r_med:.3f}'))
        verdicts.append(('LMTP added p99 <= 1 ms', d99 <= GOAL_ADDED_P99_MS, f'{d99:+.2f} ms'))

    # ---- IMAP fetch-all
    fs = by_run(rows, 'imap', 'fetch-straight', 'body_s')
    fp = by_run(rows, 'imap', 'fetch-proxied', 'body_s')
    if fs and fp:
        mbs = {m: by_run(rows, 'imap', f'fetch-{m}', 'body_mb_s') for m in ('straight', 'proxied')}
        byt = next(int(d['body_bytes']) for d in rows if d['tool'] == 'imap' and d['label'] == 'fetch-straight')
        exact = all(d.get('size_match') == '1' for d in rows
                    if d['tool'] == 'imap' and d.get('mode') == 'fetch-all')
        ex = next(d['exists'] for d in rows if d['tool'] == 'imap' and d['label'] == 'fetch-straight')
        out.append(f'### IMAP whole-folder `UID FETCH 1:* BODY.PEEK[]`, user0, {ex} messages, '
                   f'{byt / 1e6:.1f} MB of literals\n')
        out.append('Times: every fetch of every round (N = rounds x fetches per session); ratio = '
                   'proxied / straight of the median MB/s (paired: per round, median of its '
                   'session\'s fetches, the two sessions run back to back).\n')
        out.append('| path | N | body fetch s | MB/s | bytes exact |')
        out.append('|---|---|---|---|---|')
        out.append(f"| straight to node-a | {len(flat(fs))} | {spread(flat(fs), 3)} | "
                   f"{spread(flat(mbs['straight']), 1)} | {'yes' if exact else 'NO'} |")
        out.append(f"| through node-b | {len(flat(fp))} | {spread(flat(fp), 3)} | "
                   f"{spread(flat(mbs['proxied']), 1)} | {'yes' if exact else 'NO'} |")
        r_med = med(flat(mbs['proxied'])) / med(flat(mbs['straight']))
        r_pair = paired(per_run_med(mbs['straight']), per_run_med(mbs['proxied']), ratio)
        out.append(f'| **proxied / straight** | | | **{r_med:.3f}** (paired {spread(r_pair, 3)}) | |\n')
        verdicts.append(('IMAP FETCH BODY.PEEK[] throughput through the front >= 85% of straight',
                         r_med >= GOAL_THROUGHPUT, f'{r_med:.3f}'))

        # CPU per MB: the whole fetch-all session (LOGIN, SELECT, metadata and
        # body fetches); MB = what the node wrote through syscalls meanwhile
        out.append('### CPU per MB during the fetch-all sessions (LOGIN, SELECT, '
                   f'metadata + body FETCH x{len(flat(fs)) // max(len(fs), 1)}, per session)\n')
        out.append('MB = bytes the node wrote with write/send syscalls during the session '
                   '(`wchar` in /proc/PID/io; nearly all of it is the FETCH responses). '
                   'CPU = utime+stime of the whole process from /proc/PID/stat.\n')
        out.append('| path | node | role | MB written | CPU s | CPU ms per MB | user / sys s |')
        out.append('|---|---|---|---|---|---|---|')
        cpmb = {}
        for m in ('straight', 'proxied'):
            for n in 'ab':
                cs = [d for d in rows if d['tool'] == 'cpu' and d['label'] == f'fetch-{m}' and d['node'] == n]
                mb = [int(d['wchar_b']) / 1e6 for d in cs]
                cpu = [float(d['srv_cpu_s']) for d in cs]
                per = [c * 1000 / w for c, w in zip(cpu, mb) if w > 1]
                cpmb[m + n] = per
                role = {'a': 'home', 'b': 'front (relay)' if m == 'proxied' else 'idle'}[n]
                us = f"{spread([float(d['srv_user_s']) for d in cs])} / {spread([float(d['srv_sys_s']) for d in cs])}"
                out.append(f'| {m} | node-{n} | {role} | {spread(mb, 1)} | {spread(cpu)} | '
                           f'{spread(per, 2) if per else "-"} | {us} |')
        out.append('')
        if cpmb.get('proxiedb') and cpmb.get('straighta'):
            out.append(f"Front node CPU per proxied MB: **{med(cpmb['proxiedb']):.2f} ms/MB** "
                       f"(the home node serving it straight: {med(cpmb['straighta']):.2f} ms/MB; "
                       f"front/home = {med(cpmb['proxiedb']) / med(cpmb['straighta']):.2f}).\n")

    # ---- round trips
    if by_run(rows, 'rtt', 'rtt-straight', 'p99_ms', {'kind': 'noop'}):
        out.append('### Round trip of small commands, one in flight, one session\n')
        out.append('Per run: p50/p99 of the run\'s round trips; figures: median over runs '
                   '(min-max). Added = proxied - straight (paired: per round).\n')
        out.append('| command | N runs x rounds | straight p50 ms | proxied p50 ms | straight p99 ms | '
                   'proxied p99 ms | **added p50 ms** | **added p99 ms** (paired) |')
        out.append('|---|---|---|---|---|---|---|---|')
        items = [('NOOP', 'rtt', 'rtt-{}', 'p50_ms', 'p99_ms', {'kind': 'noop'}),
                 ('FETCH n BODY.PEEK[] (one ~4 KiB message)', 'rtt', 'rtt-{}', 'p50_ms', 'p99_ms',
                  {'kind': 'fetch1'}),
                 ('LOGIN (new connection; through the front: + session open at the home)', 'imap',
                  'login-{}', 'login_p50_ms', 'login_p99_ms', None),
                 ('SELECT INBOX (20 messages)', 'imap', 'login-{}', 'select_p50_ms', 'select_p99_ms', None)]
        for name, tool, lab, k50, k99, extra in items:
            a50 = per_run_med(by_run(rows, tool, lab.format('straight'), k50, extra))
            b50 = per_run_med(by_run(rows, tool, lab.format('proxied'), k50, extra))
            a99 = per_run_med(by_run(rows, tool, lab.format('straight'), k99, extra))
            b99 = per_run_med(by_run(rows, tool, lab.format('proxied'), k99, extra))
            if not a99 or not b99:
                continue
            nr = next((d.get('rounds') or d.get('repeat') for d in rows if d['tool'] == tool
                       and d.get('label') == lab.format('straight')), '?')
            d50 = med(list(b50.values())) - med(list(a50.values()))
            d99 = med(list(b99.values())) - med(list(a99.values()))
            out.append(f'| {name} | {len(a99)} x {nr} | {spread(list(a50.values()), 3)} | '
                       f'{spread(list(b50.values()), 3)} | {spread(list(a99.values()), 3)} | '
                       f'{spread(list(b99.values()), 3)} | {d50:+.3f} | **{d99:+.3f}** '
                       f'({spread(paired(a99, b99, minus), 3)}) |')
            if tool == 'rtt':
                verdicts.append((f'{name}: added p99 <= 1 ms', d99 <= GOAL_ADDED_P99_MS, f'{d99:+.3f} ms'))
        out.append('')

    if verdicts:
        out.append('### Against the goal (the proxy hop costs at most 15% of throughput and at most '
                   '1 ms of added p99 latency)\n')
        out.append('| goal | result | met |')
        out.append('|---|---|---|')
        for name, ok, val in verdicts:
            out.append(f'| {name} | {val} | {"yes" if ok else "**no**"} |')
        out.append('')
    print('\n'.join(out))


if __name__ == '__main__':
    cmd = sys.argv[1] if len(sys.argv) > 1 else ''
    if cmd == 'snap':
        print(json.dumps(snap(int(sys.argv[2]))))
    elif cmd == 'diff':
        with open(sys.argv[2]) as fa, open(sys.argv[3]) as fb:
            print(diff(json.load(fa), json.load(fb)))
    elif cmd == 'report':
        report(sys.argv[2])
    else:
        print(__doc__)
        sys.exit(2)
