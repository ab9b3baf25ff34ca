/* COMPRESS=DEFLATE (RFC 4978): a zlib filter bufferevent over a connection,
 * after the tagged OK has been flushed uncompressed. */
#ifndef TERN_SERVER_COMPRESS_H
#define TERN_SERVER_COMPRESS_H

struct conn;

/* Starts raw DEFLATE in both directions (windowBits -15). -1 on error. */
int compress_start(struct conn *c);

#endif
