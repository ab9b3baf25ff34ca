/* libFuzzer target for store/address.c: any bytes as an address field.
 * Besides "no crash, no hang, no leak", every entry must have one of the
 * three shapes ENVELOPE writes (a mailbox with a non-NULL local part and
 * domain, a group start, a group end), groups must balance without nesting,
 * and the SEARCH text must come out as valid UTF-8. */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "store/address.h"
#include "store/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool initialised;
	if (!initialised) {
		mime_init();   /* the SEARCH text decodes encoded-words */
		initialised = true;
	}
	struct mail_address_list l;
	if (mail_address_parse((const char *)data, size, &l) < 0)
		return 0;
	bool in_group = false;
	for (size_t i = 0; i < l.count; i++) {
		const struct mail_address *a = &l.a[i];
		if (mail_address_is_group_start(a)) {
			if (in_group || a->name != NULL || a->route != NULL)
				abort();
			in_group = true;
		} else if (mail_address_is_group_end(a)) {
			if (!in_group || a->name != NULL || a->route != NULL)
				abort();
			in_group = false;
		} else if (a->mailbox == NULL || a->domain == NULL) {
			abort();
		}
	}
	if (in_group)
		abort();
	char *text = mail_address_list_text(&l);
	if (text != NULL && !g_utf8_validate(text, -1, NULL))
		abort();
	free(text);
	mail_address_list_clear(&l);
	return 0;
}
