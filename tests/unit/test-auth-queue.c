/* The login admission structure of proto/auth (auth-queue.h): per-address
 * limits, round-robin service between addresses, reservations that space
 * one address's checks, the node-wide bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/client-addr.h"
#include "proto/auth-queue.h"

#define ITEMS 64

struct fixture {
	struct auth_queue q;
	struct aq_item items[ITEMS];
	unsigned freed;
};

static struct aq_addr *spare(void)
{
	struct aq_addr *a = calloc(1, sizeof(*a));
	assert_non_null(a);
	return a;
}

/* aq_enter with a fresh spare, freed when unused, as auth.c does. */
static enum aq_verdict enter(struct fixture *f, unsigned i, const char *addr, uint32_t limit)
{
	struct aq_addr *s = spare();
	enum aq_verdict v = aq_enter(&f->q, &f->items[i], addr, limit, &s);
	free(s);
	return v;
}

static void leave(struct fixture *f, unsigned i)
{
	struct aq_addr *a = aq_leave(&f->q, &f->items[i]);
	if (a != NULL) {
		free(a);
		f->freed++;
	}
}

static unsigned index_of(struct fixture *f, struct aq_item *it)
{
	assert_non_null(it);
	return (unsigned)(it - f->items);
}

static void push_ok(struct fixture *f, unsigned i, uint32_t max_pending)
{
	assert_int_equal(aq_push(&f->q, &f->items[i], max_pending), AQ_OK);
}

static void test_round_robin(void **state)
{
	(void)state;
	struct fixture *f = calloc(1, sizeof(*f));
	aq_init(&f->q);
	/* 0..9 from a busy address, then one each from two others */
	for (unsigned i = 0; i < 10; i++) {
		assert_int_equal(enter(f, i, "192.0.2.1", 100), AQ_OK);
		push_ok(f, i, 1000);
	}
	assert_int_equal(enter(f, 10, "192.0.2.2", 100), AQ_OK);
	push_ok(f, 10, 1000);
	assert_int_equal(enter(f, 11, "2001:db8::3", 100), AQ_OK);
	push_ok(f, 11, 1000);
	assert_int_equal(f->q.addresses, 3);
	assert_int_equal(f->q.checks, 12);
	/* the busy address gets one turn, then each of the others */
	unsigned order[12];
	for (unsigned n = 0; n < 12; n++) {
		order[n] = index_of(f, aq_pop(&f->q));
		aq_checked(&f->q);
	}
	assert_null(aq_pop(&f->q));
	assert_int_equal(order[0], 0);
	assert_int_equal(order[1], 10);
	assert_int_equal(order[2], 11);
	for (unsigned n = 3; n < 12; n++)
		assert_int_equal(order[n], n - 2);   /* the busy address's, oldest first */
	assert_int_equal(f->q.checks, 0);
	/* an address that arrives while another is being served waits one turn */
	for (unsigned i = 20; i < 23; i++) {
		assert_int_equal(enter(f, i, "192.0.2.1", 100), AQ_OK);
		push_ok(f, i, 1000);
	}
	assert_int_equal(index_of(f, aq_pop(&f->q)), 20);
	aq_checked(&f->q);
	assert_int_equal(enter(f, 23, "192.0.2.9", 100), AQ_OK);
	push_ok(f, 23, 1000);
	assert_int_equal(index_of(f, aq_pop(&f->q)), 21);
	assert_int_equal(index_of(f, aq_pop(&f->q)), 23);
	assert_int_equal(index_of(f, aq_pop(&f->q)), 22);
	assert_null(aq_pop(&f->q));
	for (unsigned i = 0; i < 24; i++) {
		if (i < 12 || (i >= 20 && i < 24))
			leave(f, i);
	}
	assert_int_equal(f->q.addresses, 0);
	assert_int_equal(f->freed, 4);  /* .1 (in use throughout), .2, ::3, .9 */
	free(f);
}

static void test_limits(void **state)
{
	(void)state;
	struct fixture *f = calloc(1, sizeof(*f));
	aq_init(&f->q);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(enter(f, i, "198.51.100.7", 4), AQ_OK);
	/* over the per-address limit: refused, not entered */
	assert_int_equal(enter(f, 4, "198.51.100.7", 4), AQ_FULL_ADDRESS);
	assert_null(f->items[4].addr);
	leave(f, 4);   /* never entered: nothing happens */
	assert_int_equal(enter(f, 5, "198.51.100.7", 4), AQ_FULL_ADDRESS);
	/* other addresses are not affected */
	assert_int_equal(enter(f, 6, "198.51.100.8", 4), AQ_OK);
	/* node-wide bound on checks queued or running */
	push_ok(f, 0, 2);
	push_ok(f, 1, 2);
	assert_int_equal(aq_push(&f->q, &f->items[6], 2), AQ_FULL_NODE);
	assert_int_equal(aq_push(&f->q, &f->items[2], 2), AQ_FULL_NODE);
	assert_int_equal(aq_push(&f->q, &f->items[3], 2), AQ_FULL_NODE);
	assert_int_equal(index_of(f, aq_pop(&f->q)), 0);
	/* popped but not checked yet: still counts */
	assert_int_equal(aq_push(&f->q, &f->items[2], 2), AQ_FULL_NODE);
	aq_checked(&f->q);
	push_ok(f, 2, 2);
	assert_int_equal(aq_push(&f->q, &f->items[3], 2), AQ_FULL_NODE);
	/* a queued check can be taken back (cancel), and leaving unqueues */
	assert_true(aq_unqueue(&f->q, &f->items[2]));
	assert_false(aq_unqueue(&f->q, &f->items[2]));
	assert_int_equal(f->q.checks, 1);
	leave(f, 1);   /* still queued: taken out of the queue first */
	assert_int_equal(f->q.checks, 0);
	assert_null(aq_pop(&f->q));
	leave(f, 0);
	leave(f, 2);
	leave(f, 3);
	leave(f, 6);
	assert_int_equal(f->q.addresses, 0);
	assert_int_equal(f->freed, 2);
	/* the address is free again */
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(enter(f, i, "198.51.100.7", 4), AQ_OK);
	assert_int_equal(enter(f, 4, "198.51.100.7", 4), AQ_FULL_ADDRESS);
	for (unsigned i = 0; i < 4; i++)
		leave(f, i);
	free(f);
}

static void test_reservations(void **state)
{
	(void)state;
	struct fixture *f = calloc(1, sizeof(*f));
	aq_init(&f->q);
	uint64_t start = 0;
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(enter(f, i, "203.0.113.5", 8), AQ_OK);
	/* no penalty: at once, nothing reserved */
	assert_int_equal(aq_reserve(&f->q, &f->items[0], 1000, 0, 0, 15000, &start), AQ_OK);
	assert_int_equal(start, 1000);
	/* a penalty: the caller's earliest, and the next one 2 s after it */
	assert_int_equal(aq_reserve(&f->q, &f->items[1], 1000, 1500, 2000, 15000, &start),
			 AQ_OK);
	assert_int_equal(start, 1500);
	assert_int_equal(aq_reserve(&f->q, &f->items[2], 1010, 1500, 2000, 15000, &start),
			 AQ_OK);
	assert_int_equal(start, 3500);
	assert_int_equal(aq_reserve(&f->q, &f->items[3], 1020, 1500, 8000, 15000, &start),
			 AQ_OK);
	assert_int_equal(start, 5500);
	/* past max_wait: refused, nothing reserved */
	assert_int_equal(aq_reserve(&f->q, &f->items[4], 1030, 1500, 8000, 5000, &start),
			 AQ_THROTTLED);
	assert_int_equal(f->items[4].addr->next_ms, 13500);
	/* a later earliest than the reservation wins */
	assert_int_equal(aq_reserve(&f->q, &f->items[4], 1030, 20000, 0, 30000, &start),
			 AQ_OK);
	assert_int_equal(start, 20000);
	/* other addresses have their own reservations */
	assert_int_equal(enter(f, 5, "203.0.113.6", 8), AQ_OK);
	assert_int_equal(aq_reserve(&f->q, &f->items[5], 1030, 0, 0, 15000, &start), AQ_OK);
	assert_int_equal(start, 1030);
	for (unsigned i = 0; i < 6; i++)
		leave(f, i);
	assert_int_equal(f->q.addresses, 0);
	free(f);
}

/* Many addresses in the chains: lookups, removal from the middle of a chain. */
static void test_many_addresses(void **state)
{
	(void)state;
	struct fixture *f = calloc(1, sizeof(*f));
	aq_init(&f->q);
	char addr[AQ_ADDR_MAX];
	for (unsigned i = 0; i < ITEMS; i++) {
		snprintf(addr, sizeof(addr), "10.0.%u.%u", i % 3, i);
		assert_int_equal(enter(f, i, addr, 1), AQ_OK);
		push_ok(f, i, ITEMS);
	}
	assert_int_equal(f->q.addresses, ITEMS);
	/* each address once, in the order they came */
	for (unsigned i = 0; i < ITEMS; i++) {
		assert_int_equal(index_of(f, aq_pop(&f->q)), i);
		aq_checked(&f->q);
	}
	for (unsigned i = 0; i < ITEMS; i += 2)
		leave(f, i);
	for (unsigned i = 1; i < ITEMS; i += 2) {
		snprintf(addr, sizeof(addr), "10.0.%u.%u", i % 3, i);
			struct aq_addr *s = spare();
		assert_int_equal(aq_enter(&f->q, &f->items[0], addr, 1, &s), AQ_FULL_ADDRESS);
		free(s);
		leave(f, i);
	}
	assert_int_equal(f->q.addresses, 0);
	assert_int_equal(f->freed, ITEMS);
	free(f);
}

static void test_address_key(void **state)
{
	(void)state;
	static const struct { const char *in, *out; } cases[] = {
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::9", "2001:db8:1:2::/64"},
		{"2001:db8::1", "2001:db8::/64"},
		{"::1", "::/64"},
		{"fe80::1:2:3:4", "fe80::/64"},
		{"?", "?"},
		{"not an address", "not an address"},
	};
	char buf[AQ_ADDR_MAX];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		client_addr_key(cases[i].in, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].out);
	}
	/* the longest IPv6 text still fits with its suffix */
	client_addr_key("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", buf, sizeof(buf));
	assert_string_equal(buf, "ffff:ffff:ffff:ffff::/64");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address_key),
		cmocka_unit_test(test_round_robin),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_reservations),
		cmocka_unit_test(test_many_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
