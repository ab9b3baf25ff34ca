"""A client-side mailbox model for the RFC 7162 tests: it keeps the view one
IMAP session must have (sequence order, UIDs, flags, mod-sequences) by
applying only what the server told that session (EXISTS, EXPUNGE, VANISHED,
FETCH), so a test can compare it with a fresh full FETCH; plus UID-set
parsing/formatting and a QRESYNC resynchronisation of an old cache."""

import re

from imap_helpers import fetch_dict, resp_code

IGNORED_FLAGS = {"\\RECENT"}


def parse_set(text):
    """'1:3,7' -> {1, 2, 3, 7} (no '*')."""
    out = set()
    text = text.decode() if isinstance(text, bytes) else text
    for part in text.split(","):
        a, _, b = part.partition(":")
        lo, hi = int(a), int(b or a)
        out |= set(range(min(lo, hi), max(lo, hi) + 1))
    return out


def format_set(nums):
    """{1, 2, 3, 7} -> '1:3,7'; nums must not be empty."""
    nums = sorted(nums)
    assert nums, "empty set"
    parts, start, prev = [], nums[0], nums[0]
    for n in nums[1:]:
        if n == prev + 1:
            prev = n
            continue
        parts.append(f"{start}:{prev}" if start != prev else f"{start}")
        start = prev = n
    parts.append(f"{start}:{prev}" if start != prev else f"{start}")
    return ",".join(parts)


def norm_flags(flags):
    """A FETCH FLAGS list -> frozenset of case-folded names (system flags
    and keywords compare case-insensitively), \\Recent left out."""
    return frozenset(str(f).upper() for f in flags) - IGNORED_FLAGS


def vanished_of(untagged, earlier):
    out = set()
    pat = rb"\* VANISHED \(EARLIER\) (\S+)$" if earlier else rb"\* VANISHED (\d\S*)$"
    for r in untagged:
        m = re.match(pat, r)
        if m:
            out |= parse_set(m.group(1))
    return out


def fetches(untagged):
    """[(seq, dict)] of the FETCH responses in order."""
    return [fetch_dict(r) for r in untagged if re.match(rb"\* \d+ FETCH ", r)]


class ViewModel:
    """What one selected session knows: [uid or None, flags, modseq] per
    sequence number. None = a message announced by EXISTS whose UID the
    client has not fetched yet."""

    def __init__(self, qresync, name="session"):
        self.qresync = qresync
        self.name = name
        self.msgs = []

    def load(self, c, select_untagged):
        """Fills the model from SELECT's EXISTS and a full fetch on c."""
        self.msgs = []
        self.apply([r for r in select_untagged if re.match(rb"\* \d+ EXISTS", r)])
        if self.msgs:
            self.apply(c.ok("FETCH 1:* (UID FLAGS MODSEQ)"))

    def uids(self):
        return [m[0] for m in self.msgs]

    def state(self):
        """{uid: flags}"""
        return {m[0]: m[1] for m in self.msgs}

    def apply(self, untagged):
        """Applies responses in order; checks what a client must be able to
        rely on (RFC 3501 §7.4.1, RFC 7162 §3.2.10)."""
        for r in untagged:
            m = re.match(rb"\* (\d+) (EXISTS|EXPUNGE|FETCH)\b", r)
            if m:
                n, what = int(m.group(1)), m.group(2)
                if what == b"EXISTS":
                    assert n >= len(self.msgs), \
                        f"{self.name}: EXISTS {n} shrinks the view of {len(self.msgs)} ({r!r})"
                    self.msgs += [[None, None, None] for _ in range(n - len(self.msgs))]
                elif what == b"EXPUNGE":
                    assert not self.qresync, \
                        f"{self.name}: EXPUNGE after ENABLE QRESYNC (RFC 7162 §3.2.10): {r!r}"
                    assert 1 <= n <= len(self.msgs), \
                        f"{self.name}: EXPUNGE {n} outside the view of {len(self.msgs)}"
                    del self.msgs[n - 1]
                else:
                    seq, d = fetch_dict(r)
                    assert 1 <= seq <= len(self.msgs), \
                        f"{self.name}: FETCH for {seq} outside the view of {len(self.msgs)}: {r!r}"
                    cur = self.msgs[seq - 1]
                    if "UID" in d:
                        uid = int(d["UID"])
                        assert cur[0] in (None, uid), \
                            f"{self.name}: FETCH says seq {seq} is UID {uid}, the view has {cur[0]}"
                        cur[0] = uid
                    if "FLAGS" in d:
                        cur[1] = norm_flags(d["FLAGS"])
                    if "MODSEQ" in d:
                        cur[2] = int(d["MODSEQ"][0])
                continue
            if re.match(rb"\* VANISHED \(EARLIER\)", r):
                continue          # solicited history, not a change of the view
            m = re.match(rb"\* VANISHED (\S+)$", r)
            if m:
                assert self.qresync, f"{self.name}: VANISHED before ENABLE QRESYNC: {r!r}"
                gone = parse_set(m.group(1))
                known = {x[0] for x in self.msgs}
                # each UID decrements the message count: it must be one the
                # client has in its view (RFC 7162 §3.2.10)
                assert gone <= known, \
                    f"{self.name}: VANISHED {sorted(gone - known)} not in the view {sorted(known)}"
                self.msgs = [x for x in self.msgs if x[0] not in gone]

    def complete(self, c):
        """Learns UIDs/flags of messages announced only by EXISTS."""
        first = next((i for i, m in enumerate(self.msgs) if m[0] is None or m[1] is None), None)
        if first is not None:
            self.apply(c.ok(f"FETCH {first + 1}:* (UID FLAGS)"))
        assert all(m[0] is not None and m[1] is not None for m in self.msgs), self.msgs


def full_state(c):
    """{uid: (flags, modseq)} from a NOOP and a full UID FETCH on session c,
    checking that sequence numbers run in UID order."""
    c.ok("NOOP")
    out, pairs = {}, []
    for seq, d in fetches(c.ok("UID FETCH 1:* (UID FLAGS MODSEQ)")):
        uid = int(d["UID"])
        pairs.append((seq, uid))
        out[uid] = (norm_flags(d["FLAGS"]), int(d["MODSEQ"][0]))
    pairs.sort()
    uids = [u for _, u in pairs]
    assert uids == sorted(set(uids)), f"sequence numbers not in UID order: {pairs}"
    return out


def qresync_select(c, uidvalidity, modseq, known=None, folder="INBOX"):
    """SELECT folder (QRESYNC (...)) on c; returns (untagged, vanished set,
    {uid: (flags, modseq)} of the FETCHes, HIGHESTMODSEQ, UIDNEXT)."""
    arg = f"{uidvalidity} {modseq}" + (f" {format_set(known)}" if known else "")
    untagged = c.ok(f"SELECT {folder} (QRESYNC ({arg}))")
    changed = {}
    for seq, d in fetches(untagged):
        assert "UID" in d, f"QRESYNC FETCH without UID (RFC 7162 §3.2.5.1): {d}"
        assert "MODSEQ" in d and "FLAGS" in d, f"QRESYNC FETCH needs FLAGS and MODSEQ: {d}"
        changed[int(d["UID"])] = (norm_flags(d["FLAGS"]), int(d["MODSEQ"][0]))
    hms = resp_code(untagged, "HIGHESTMODSEQ")
    nxt = resp_code(untagged, "UIDNEXT")
    return untagged, vanished_of(untagged, True), changed, int(hms), int(nxt)
