/* libFuzzer target for the IMAP URL parser (proto/imap/imap-url.c): the
 * input is the URL text. Beyond "no crash": an accepted URL names a
 * message (UID not 0), user and host only when absolute, a section that
 * can stand inside BODY[...] (printable ASCII, no brackets), a mailbox of
 * valid UTF-8 without NUL; a refusal says why; the BADURL text of any
 * input is printable ASCII without "]". */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unistr.h>

#include "proto/imap/imap-url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_url u;
	const char *err = NULL;
	if (imap_url_parse((const char *)data, size, &u, &err) == 0) {
		CHECK(u.uid != 0);
		CHECK(u.absolute || (u.user == NULL && u.host == NULL));
		CHECK(!u.absolute || (u.host != NULL && u.host[0] != '\0'));
		CHECK(u.mailbox != NULL || !u.absolute);
		if (u.mailbox != NULL) {
			CHECK(u.mailbox[0] != '\0');
			CHECK(u8_check((const uint8_t *)u.mailbox, strlen(u.mailbox)) == NULL);
		}
		if (u.section != NULL) {
			CHECK(u.section[0] != '\0');
			for (const char *p = u.section; *p != '\0'; p++)
				CHECK(*p >= 0x20 && *p <= 0x7e && strchr("[]<>", *p) == NULL);
		}
		CHECK(u.partial || (u.partial_offset == 0 && u.partial_length == 0));
		imap_url_clear(&u);
	} else {
		CHECK(err != NULL);
	}
	char *t = imap_url_resp_text((const char *)data, size);
	if (t != NULL) {
		for (const char *p = t; *p != '\0'; p++)
			CHECK(*p >= 0x20 && *p < 0x7f && *p != ']');
		CHECK(strlen(t) >= size);
		free(t);
	}
	return 0;
}
