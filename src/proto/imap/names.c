/* Mailbox names between the wire (modified UTF-7, or UTF-8 after ENABLE
 * UTF8=ACCEPT, RFC 6855 §3, or ENABLE IMAP4rev2, RFC 9051 §5.1) and the
 * store (UTF-8, '/' separated, "INBOX"). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include "core/limits.h"
#include "proto/imap/mailbox.h"
#include "proto/imap/mutf7.h"
#include "proto/imap/quote.h"
#include "proto/imap/session.h"

bool imap_names_utf8(const struct imap_session *s)
{
	return s->utf8_accept || s->imap4rev2;
}

/* INBOX is case-insensitive (RFC 3501 §5.1), also as a parent. */
static void inbox_normalize(char *name)
{
	if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/'))
		memcpy(name, "INBOX", 5);
}

/* Empty components ("a//b", "/a"), control characters, and components over
 * the limit are refused; one trailing separator is dropped (RFC 3501 §6.3.3:
 * "CREATE foo/" creates foo). */
static const char *name_check(char *name)
{
	size_t len = strlen(name);
	if (len > 1 && name[len - 1] == '/')
		name[--len] = '\0';
	if (len == 0)
		return "Empty mailbox name";
	size_t comp = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			return "Invalid characters in mailbox name";
		if (c == '/') {
			if (comp == 0)
				return "Empty hierarchy level in mailbox name";
			comp = 0;
			continue;
		}
		if (++comp > TERN_FOLDER_NAME_MAX)
			return "Mailbox name too long";
	}
	if (comp == 0)
		return "Empty hierarchy level in mailbox name";
	return NULL;
}

char *imap_name_from_wire(const struct imap_session *s, const char *name, size_t len,
			  const char **bad_r)
{
	char *out = NULL;
	if (memchr(name, '\0', len) != NULL) {
		*bad_r = "Invalid characters in mailbox name";
		return NULL;
	}
	if (imap_names_utf8(s)) {
		/* encoding validates the UTF-8; the result itself is not needed */
		char *check = NULL;
		if (imap_utf8_to_mutf7(name, len, &check) < 0) {
			*bad_r = "Mailbox name is not valid UTF-8";
			return NULL;
		}
		free(check);
		out = strndup(name, len);
	} else if (imap_mutf7_to_utf8(name, len, &out) < 0) {
		*bad_r = "Mailbox name is not valid mUTF-7";
		return NULL;
	}
	if (out == NULL) {
		*bad_r = "Out of memory";
		return NULL;
	}
	const char *bad = name_check(out);
	if (bad != NULL) {
		free(out);
		*bad_r = bad;
		return NULL;
	}
	inbox_normalize(out);
	return out;
}

int imap_name_write(const struct imap_session *s, struct evbuffer *out, const char *name)
{
	if (imap_names_utf8(s))
		return imap_write_astring(out, name, strlen(name), IMAP_WRITE_UTF8);
	char *m = NULL;
	if (imap_utf8_to_mutf7(name, strlen(name), &m) < 0) {
		/* the store holds only valid UTF-8; never send raw 8-bit to a 7-bit client */
		return imap_write_astring(out, name, strlen(name), 0);
	}
	int r = imap_write_astring(out, m, strlen(m), 0);
	free(m);
	return r;
}

/* ---- which names a new folder may have ---- */

static bool is_noncharacter(ucs4_t uc)
{
	return (uc >= 0xfdd0 && uc <= 0xfdef) || (uc & 0xfffe) == 0xfffe;
}

/* Invisible characters that change how the text around them shows. */
static bool is_hidden_format(ucs4_t uc)
{
	if (uc == 0x200c || uc == 0x200d)   /* ZWNJ, ZWJ: part of the spelling */
		return false;
	return uc_is_general_category(uc, UC_CATEGORY_Cf) ||
	       uc_is_general_category(uc, UC_CATEGORY_Zl) ||
	       uc_is_general_category(uc, UC_CATEGORY_Zp);
}

bool imap_folder_name_valid(const char *name, size_t len, const char **reason_r)
{
	const uint8_t *s = (const uint8_t *)name;
	bool ascii = true;

	if (len == 0) {
		*reason_r = "Empty mailbox name";
		return false;
	}
	if (u8_check(s, len) != NULL) {
		*reason_r = "Mailbox name is not valid UTF-8";
		return false;
	}
	for (size_t i = 0; i < len;) {
		ucs4_t uc;
		int n = u8_mbtouc(&uc, s + i, len - i);
		i += (size_t)n;
		ascii = ascii && uc < 0x80;
		if (uc < 0x20 || (uc >= 0x7f && uc <= 0x9f)) {
			*reason_r = "Mailbox name contains control characters";
			return false;
		}
		if (is_hidden_format(uc)) {
			*reason_r = "Mailbox name contains invisible formatting characters";
			return false;
		}
		if (is_noncharacter(uc)) {
			*reason_r = "Mailbox name contains a noncharacter";
			return false;
		}
	}
	if (ascii)
		return true;
	size_t nfc_len = 0;
	uint8_t *nfc = u8_normalize(UNINORM_NFC, s, len, NULL, &nfc_len);
	if (nfc == NULL) {
		*reason_r = "Out of memory";
		return false;
	}
	bool same = nfc_len == len && memcmp(nfc, s, len) == 0;
	free(nfc);
	if (!same)
		*reason_r = "Mailbox name is not in Unicode normalization form C";
	return same;
}
