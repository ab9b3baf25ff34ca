/* Delivery ids: what the journal gives every accepted recipient and what a
 * store records (`delivered`) so a replayed delivery is stored once. A move
 * carries a store's ids to another node, so ids must be unique in the whole
 * cluster: the node's number (directory, node_numbers) in the high bits, a
 * microsecond clock that only moves forward in the low ones. */
#ifndef TERN_CORE_DELIVERY_ID_H
#define TERN_CORE_DELIVERY_ID_H

#include <stdint.h>

/* 52 bits of microseconds last until 2112; 11 bits of node number keep an
 * id positive as an SQLite INTEGER. Number 0 is what builds before node
 * numbers used (the bare clock), so old ids never equal new ones. */
#define DELIVERY_ID_SEQ_BITS 52
#define DELIVERY_ID_SEQ_BITS_SQL "52"   /* the same, inside SQL text */
#define DELIVERY_ID_SEQ_MASK ((UINT64_C(1) << DELIVERY_ID_SEQ_BITS) - 1)
#define DELIVERY_ID_MAX_NODE 2047u

static inline uint64_t delivery_id_make(uint32_t node, uint64_t seq)
{
	return ((uint64_t)node << DELIVERY_ID_SEQ_BITS) | (seq & DELIVERY_ID_SEQ_MASK);
}

static inline uint32_t delivery_id_node(uint64_t id)
{
	return (uint32_t)(id >> DELIVERY_ID_SEQ_BITS);
}

/* The clock part: microseconds since 1970 when the id was handed out (or a
 * little later, when a burst ran ahead of the clock). */
static inline uint64_t delivery_id_seq(uint64_t id)
{
	return id & DELIVERY_ID_SEQ_MASK;
}

#endif
