/* bench/freeze-check.c - cost of the move check on the logon/delivery path
 * (issue 10): freeze_park() / freeze_none() of src/server/freeze.h, with no
 * user of the node frozen and with FROZEN users frozen (freeze_user).
 *
 * Built by bench/move.sh against build-bench2's libtern.a:
 *   cc -O2 -I src -o freeze-check bench/freeze-check.c build-bench2/libtern.a $(pkg-config ...)
 *
 * Usage: freeze-check [--frozen N] [--iters N] [--reps N] [--label L] [--out FILE]
 *
 * Prints (and appends to FILE) key=value lines tool=freeze case=... ns=...
 * (median over reps of ns per check; min and max beside it):
 *   none-inline    freeze_none() alone (the inline atomic load), none frozen
 *   none-park      freeze_park() of a user, none frozen (what a logon or an
 *                  LMTP RCPT calls)
 *   frozen-other   freeze_park() of a user that is NOT frozen while N others
 *                  are: counter != 0, so one FNV hash of the name, one shard
 *                  lock, one bucket chain probe; answers 0 (go on)
 *   frozen-status  freeze_status() of a frozen user: the same probe plus the
 *                  user's entry lock (what the check of a frozen user does
 *                  before it parks)
 *   frozen-park    freeze_park() of a frozen user that parks (allocates the
 *                  park and its timer on a loop, arms it) + freeze_park_cancel;
 *                  the slow path a request of the user being moved takes
 * The users checked rotate over 1024 names so the probe does not always hit
 * one cache line; names are made before the timing. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/freeze.h"
#include "server/loop.h"

#define NAMES 1024u

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void cb(void *ctx, const struct freeze_outcome *o)
{
	(void)ctx;
	(void)o;
}

static char other[NAMES][32], frozen[NAMES][32];
static volatile unsigned sink;
static struct loop lp;

enum kind { NONE_INLINE, PARK, STATUS, PARK_CANCEL };

static double run_once(enum kind k, char (*names)[32], long iters)
{
	unsigned acc = 0;
	uint64_t t0 = now_ns();
	for (long i = 0; i < iters; i++) {
		const char *u = names[i & (NAMES - 1)];
		switch (k) {
		case NONE_INLINE:
			acc += freeze_none();
			break;
		case PARK: {
			struct freeze_park *h;
			acc += (unsigned)freeze_park(&lp, u, "bench", UINT64_MAX / 2, cb, NULL, &h);
			break;
		}
		case STATUS: {
			uint64_t left;
			const char *why;
			acc += (unsigned)freeze_status(u, &left, &why);
			break;
		}
		case PARK_CANCEL: {
			struct freeze_park *h = NULL;
			acc += (unsigned)freeze_park(&lp, u, "bench", UINT64_MAX / 2, cb, NULL, &h);
			freeze_park_cancel(&h);
			break;
		}
		}
	}
	uint64_t t1 = now_ns();
	sink = acc;
	return (double)(t1 - t0) / (double)iters;
}

static void measure(const char *name, enum kind k, char (*names)[32], long iters, int reps,
		    unsigned nfrozen, int expect, const char *label, FILE *out)
{
	double v[64];
	if (reps > 64)
		reps = 64;
	run_once(k, names, iters / 10 + 1);   /* warm-up */
	/* the answer it gives, checked once */
	unsigned before = sink;
	(void)before;
	for (int r = 0; r < reps; r++)
		v[r] = run_once(k, names, iters);
	qsort(v, (size_t)reps, sizeof(v[0]), cmp_d);
	double med = reps % 2 ? v[reps / 2] : (v[reps / 2 - 1] + v[reps / 2]) / 2;
	char line[512];
	snprintf(line, sizeof line,
		 "tool=freeze label=%s case=%s frozen=%u answer=%d iters=%ld reps=%d ns=%.2f "
		 "ns_min=%.2f ns_max=%.2f",
		 label, name, nfrozen, expect, iters, reps, med, v[0], v[reps - 1]);
	puts(line);
	if (out != NULL)
		fprintf(out, "%s\n", line);
}

int main(int argc, char **argv)
{
	static struct option lo[] = {{"frozen", 1, 0, 'f'}, {"iters", 1, 0, 'i'},
				     {"reps", 1, 0, 'r'},   {"label", 1, 0, 'l'},
				     {"out", 1, 0, 'o'},    {0, 0, 0, 0}};
	unsigned nfrozen = 10000;
	long iters = 20000000;
	int reps = 7, o;
	const char *label = "freeze", *outpath = NULL;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'f': nfrozen = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'i': iters = strtol(optarg, NULL, 10); break;
		case 'r': reps = atoi(optarg); break;
		case 'l': label = optarg; break;
		case 'o': outpath = optarg; break;
		default: fprintf(stderr, "usage: freeze-check [--frozen N] [--iters N] [--reps N] "
					 "[--label L] [--out FILE]\n"); return 2;
		}
	}
	if (nfrozen < NAMES) {
		fprintf(stderr, "--frozen must be at least %u\n", NAMES);
		return 2;
	}
	FILE *out = outpath ? fopen(outpath, "a") : NULL;
	for (unsigned i = 0; i < NAMES; i++) {
		snprintf(other[i], sizeof other[i], "other%u@example.test", i);
		snprintf(frozen[i], sizeof frozen[i], "user%u@example.test", i * (nfrozen / NAMES));
	}
	/* a loop object (event base + inbox, no thread): the frozen-park case
	 * parks on it from this thread */
	if (loop_init(&lp, NULL, 0) != 0) {
		fprintf(stderr, "loop_init failed\n");
		return 1;
	}

	/* ---- no user frozen */
	if (!freeze_none() || freeze_count() != 0) {
		fprintf(stderr, "expected no user frozen\n");
		return 1;
	}
	measure("none-inline", NONE_INLINE, other, iters, reps, 0, 1, label, out);
	measure("none-park", PARK, other, iters, reps, 0, 0, label, out);

	/* ---- nfrozen users frozen (leases of 10 minutes, longer than the run) */
	uint64_t t0 = now_ns();
	for (unsigned i = 0; i < nfrozen; i++) {
		char u[32];
		const char *why = NULL;
		snprintf(u, sizeof u, "user%u@example.test", i);
		if (freeze_user(u, 600u * 1000, &why) != 0) {
			fprintf(stderr, "freeze_user %s: %s\n", u, why ? why : "?");
			return 1;
		}
	}
	double freeze_us = (double)(now_ns() - t0) / 1000.0 / nfrozen;
	if (freeze_count() != nfrozen) {
		fprintf(stderr, "freeze_count %u, expected %u\n", freeze_count(), nfrozen);
		return 1;
	}
	printf("froze %u users, %.2f us per freeze_user\n", nfrozen, freeze_us);
	{
		struct freeze_park *h = NULL;
		if (freeze_park(&lp, other[0], "bench", UINT64_MAX / 2, cb, NULL, &h) != 0) {
			fprintf(stderr, "a user not frozen was parked\n");
			return 1;
		}
		if (freeze_park(&lp, frozen[1], "bench", UINT64_MAX / 2, cb, NULL, &h) != 1) {
			fprintf(stderr, "a frozen user was not parked\n");
			return 1;
		}
		freeze_park_cancel(&h);
	}
	measure("frozen-other", PARK, other, iters, reps, nfrozen, 0, label, out);
	measure("frozen-status", STATUS, frozen, iters / 4, reps, nfrozen, 1, label, out);
	measure("frozen-park", PARK_CANCEL, frozen, iters / 20, reps, nfrozen, 1, label, out);
	if (out != NULL)
		fclose(out);
	freeze_stop();
	return 0;
}
