/* libFuzzer target for the view snapshot encoding (src/store/store-snapshot.c).
 * The bytes come from the user's store file, which a damaged disk or an
 * older copy can make anything: decoding must never read past the input,
 * and whatever decodes must encode back to the same bytes and decode again
 * to the same messages. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store-private.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_msg *msgs = NULL;
	size_t count = 0;
	bool nomem;
	/* a copy of exactly size bytes, so reading one past it is caught under ASan */
	uint8_t *in = malloc(size > 0 ? size : 1);
	CHECK(in != NULL);
	memcpy(in, data, size);
	if (store_snapshot_decode(in, size, &msgs, &count, &nomem) == 0) {
		struct store_snapshot_msg *snap = malloc((count > 0 ? count : 1) * sizeof(*snap));
		CHECK(snap != NULL);
		for (size_t i = 0; i < count; i++) {
			CHECK(i == 0 || msgs[i].uid > msgs[i - 1].uid);
			CHECK(msgs[i].keywords == NULL || msgs[i].keywords[0] != '\0');
			snap[i] = (struct store_snapshot_msg){ .uid = msgs[i].uid, .flags = msgs[i].flags,
				.modseq = msgs[i].modseq, .keywords = msgs[i].keywords };
		}
		size_t len = 0;
		unsigned char *out = store_snapshot_encode(snap, count, &len);
		CHECK(out != NULL);
		/* varints may be written longer than needed in the input, so
		 * compare the decoded messages, not the bytes */
		struct store_msg *again = NULL;
		size_t again_count = 0;
		CHECK(store_snapshot_decode(out, len, &again, &again_count, &nomem) == 0);
		CHECK(again_count == count);
		for (size_t i = 0; i < count; i++) {
			CHECK(again[i].uid == msgs[i].uid && again[i].flags == msgs[i].flags &&
			      again[i].modseq == msgs[i].modseq);
			CHECK((again[i].keywords == NULL) == (msgs[i].keywords == NULL));
			CHECK(again[i].keywords == NULL ||
			      strcmp(again[i].keywords, msgs[i].keywords) == 0);
		}
		CHECK(len <= size);
		store_msgs_free(&again, again_count);
		free(out);
		free(snap);
		store_msgs_free(&msgs, count);
	}
	free(in);
	return 0;
}
