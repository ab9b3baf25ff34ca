/* The source node's side of a mailbox move: once the destination's mover
 * has opened a "move" channel for a user homed here (cluster/inbound.h), it
 * asks, one line at a time, for a copy of the user's store, for the changes
 * since a modseq, for a checksum, to freeze and release the user, to fence
 * this copy after the switch and, once the move is complete, to remove it.
 * Store work runs on the user's apply worker (a store task, serialised with
 * the user's deliveries); files are streamed from the kernel.
 *
 *   SNAPSHOT                      +FILE <size> <modseq>  then the bytes
 *   DELTA <modseq> <delivered>    +FILE <size> <modseq> <changes>  then the bytes
 *   CHECKSUM                      +CHECKSUM <folders> <messages> <hex>
 *   FREEZE <ms>                   +OK once frozen and earlier writes applied
 *   FENCE                         +OK (this copy refuses writes from now on)
 *   UNFENCE                       +OK (a move rolled back before its switch)
 *   RELEASE stay | RELEASE moved <node> <addr>     +OK
 *   REMOVE                        +OK (only when the user is homed elsewhere)
 *   QUIT
 * Any failure: -ERR <text>; the channel stays usable. */
#ifndef TERN_MOVER_MOVE_SOURCE_H
#define TERN_MOVER_MOVE_SOURCE_H

struct conn;
struct cluster_open_request;

int move_source_adopt(struct conn *c, const struct cluster_open_request *req);

#endif
