/*
 * bench/imap-rtt.c - round-trip latency of small IMAP commands, one at a time
 * on one session (bench/cluster.sh: straight to a node vs through a front
 * node that proxies the session).
 *
 * Build:  cc -O2 -Wall -o imap-rtt imap-rtt.c
 *
 * Connects, LOGIN, SELECT INBOX, then --rounds round trips of each command
 * kind, one command in flight at a time:
 *   noop    "tN NOOP"
 *   fetch1  "tN FETCH k BODY.PEEK[]" with k stepping through the folder
 *           (one whole message, ~4 KiB in the bench)
 * A round trip = from write() of the command to the end of its tagged
 * reply (literals are read by their announced length).  Every reply must be
 * OK.  Prints, and with --out appends, one key=value line per kind:
 *   tool=rtt kind=noop label=L rounds=N p50_ms p90_ms p99_ms max_ms mean_ms
 *   (fetch1 also bytes=<literal octets>)
 * Options: --host --port --user --pass --rounds (2000) --warmup (100)
 *          --timeout s (30) --label --out FILE
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *o_host = "127.0.0.1", *o_user = "user0@example.test", *o_pass = "pass";
static const char *o_label = "", *o_out = NULL;
static int o_port = 143, o_rounds = 2000, o_warmup = 100, o_timeout = 30;

static int fd = -1;
static char buf[1 << 16];
static size_t bpos, blen;
static long long lit_bytes;
static int tagn;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "imap-rtt: %s\n", what);
	exit(1);
}

static void fill(void)
{
	if (bpos < blen)
		return;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int r = poll(&p, 1, o_timeout * 1000);
	if (r <= 0)
		die(r == 0 ? "timeout waiting for the server" : "poll failed");
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n <= 0)
		die(n == 0 ? "server closed the connection" : "read failed");
	bpos = 0;
	blen = (size_t)n;
}

/* One line (without CRLF) into line; a literal it announces is read and
 * counted, and the line continues after it.  Returns the logical length. */
static size_t read_line(char *line, size_t cap)
{
	size_t n = 0;
	for (;;) {
		fill();
		char c = buf[bpos++];
		if (c == '\n') {
			if (n > 0 && line[n - 1] == '\r')
				n--;
			line[n] = 0;
			/* literal? "{123}" at the end */
			if (n > 2 && line[n - 1] == '}') {
				char *b = strrchr(line, '{');
				if (b != NULL) {
					long long want = atoll(b + 1), got = 0;
					while (got < want) {
						fill();
						size_t take = blen - bpos;
						if ((long long)take > want - got)
							take = (size_t)(want - got);
						bpos += take;
						got += (long long)take;
					}
					lit_bytes += want;
					n = (size_t)(b - line);
					continue;
				}
			}
			return n;
		}
		if (n + 1 < cap)
			line[n++] = c;
	}
}

static void send_all(const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write failed");
		s += n;
		len -= (size_t)n;
	}
}

/* Sends "tN <cmd>", reads to the tagged reply, which must be OK.  Returns
 * the EXISTS count seen (or -1). */
static long command(const char *cmd)
{
	char tag[16], out[512], line[8192];
	long exists = -1;
	snprintf(tag, sizeof(tag), "t%d", ++tagn);
	int len = snprintf(out, sizeof(out), "%s %s\r\n", tag, cmd);
	send_all(out, (size_t)len);
	size_t tl = strlen(tag);
	for (;;) {
		read_line(line, sizeof(line));
		if (strncmp(line, "* ", 2) == 0 && strstr(line, " EXISTS") != NULL)
			exists = atol(line + 2);
		if (strncmp(line, tag, tl) == 0 && line[tl] == ' ') {
			if (strncmp(line + tl + 1, "OK", 2) != 0) {
				fprintf(stderr, "imap-rtt: %s -> %s\n", cmd, line);
				exit(1);
			}
			return exists;
		}
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *kind, double *t, int n, long long bytes)
{
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += t[i];
	qsort(t, (size_t)n, sizeof(double), cmp_d);
#define PCT(p) (t[(int)((p) * (n - 1) + 0.5)] * 1000)
	char l[512];
	int len = snprintf(l, sizeof(l),
			   "tool=rtt kind=%s label=%s rounds=%d p50_ms=%.4f p90_ms=%.4f p99_ms=%.4f "
			   "max_ms=%.4f mean_ms=%.4f bytes=%lld\n",
			   kind, o_label, n, PCT(0.50), PCT(0.90), PCT(0.99), t[n - 1] * 1000,
			   sum / n * 1000, bytes);
	fwrite(l, 1, (size_t)len, stdout);
	if (o_out != NULL) {
		FILE *f = fopen(o_out, "a");
		if (f == NULL)
			die("cannot open --out file");
		fwrite(l, 1, (size_t)len, f);
		fclose(f);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"user", 1, 0, 'u'}, {"pass", 1, 0, 'P'},
		{"rounds", 1, 0, 'n'}, {"warmup", 1, 0, 'w'}, {"timeout", 1, 0, 't'},
		{"label", 1, 0, 'l'}, {"out", 1, 0, 'o'}, {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'h': o_host = optarg; break;
		case 'p': o_port = atoi(optarg); break;
		case 'u': o_user = optarg; break;
		case 'P': o_pass = optarg; break;
		case 'n': o_rounds = atoi(optarg); break;
		case 'w': o_warmup = atoi(optarg); break;
		case 't': o_timeout = atoi(optarg); break;
		case 'l': o_label = optarg; break;
		case 'o': o_out = optarg; break;
		default:
			fprintf(stderr, "usage: imap-rtt --port P [--host H --user U --pass P "
					"--rounds N --warmup N --timeout S --label L --out FILE]\n");
			return 2;
		}
	}
	if (o_rounds < 1)
		die("--rounds must be at least 1");
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	char port[16];
	snprintf(port, sizeof(port), "%d", o_port);
	if (getaddrinfo(o_host, port, &hints, &ai) != 0)
		die("getaddrinfo failed");
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		die("connect failed");
	freeaddrinfo(ai);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	char line[8192], cmd[512];
	read_line(line, sizeof(line));
	if (strncmp(line, "* OK", 4) != 0)
		die("no greeting");
	snprintf(cmd, sizeof(cmd), "LOGIN \"%s\" \"%s\"", o_user, o_pass);
	command(cmd);
	long exists = command("SELECT INBOX");
	if (exists < 1)
		die("INBOX is empty (fetch1 needs messages)");
	double *t = calloc((size_t)o_rounds, sizeof(double));
	if (t == NULL)
		die("out of memory");
	/* noop */
	for (int i = 0; i < o_warmup; i++)
		command("NOOP");
	for (int i = 0; i < o_rounds; i++) {
		double t0 = now_s();
		command("NOOP");
		t[i] = now_s() - t0;
	}
	report("noop", t, o_rounds, 0);
	/* fetch1: one message body, stepping through the folder */
	long k = 1;
	for (int i = 0; i < o_warmup; i++) {
		snprintf(cmd, sizeof(cmd), "FETCH %ld BODY.PEEK[]", k);
		command(cmd);
		k = k % exists + 1;
	}
	lit_bytes = 0;
	for (int i = 0; i < o_rounds; i++) {
		snprintf(cmd, sizeof(cmd), "FETCH %ld BODY.PEEK[]", k);
		k = (k + 7) % exists + 1;
		double t0 = now_s();
		command(cmd);
		t[i] = now_s() - t0;
	}
	report("fetch1", t, o_rounds, lit_bytes);
	command("LOGOUT");
	close(fd);
	free(t);
	return 0;
}
