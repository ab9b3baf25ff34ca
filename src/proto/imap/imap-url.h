/* IMAP URLs (RFC 5092), the subset CATENATE (RFC 4469 §3) needs: one
 * message or message part, as "/mailbox[;UIDVALIDITY=n]/;UID=n
 * [/;SECTION=s][/;PARTIAL=o[.l]]", as the same after "imap://[user@]host
 * [:port]", or relative to the selected mailbox (";UID=n[/;SECTION=s]..."),
 * keys in any case. Mailbox names and sections are percent-decoded (a
 * mailbox name is UTF-8, RFC 5092 §3.2); message lists (searches),
 * commands and URLAUTH are refused. Pure code: no I/O, no session; what a
 * server does with the result (which mailboxes, which users) is its
 * decision. */
#ifndef TERN_PROTO_IMAP_IMAP_URL_H
#define TERN_PROTO_IMAP_IMAP_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct imap_url {
	bool absolute;          /* "imap://..." */
	char *user;             /* absolute: the decoded user name, or NULL */
	char *host;             /* absolute: the host as written (with any port) */
	char *mailbox;          /* decoded UTF-8; NULL = relative to the selected
	                           mailbox (";UID=n..." form) */
	uint32_t uidvalidity;   /* 0 = not given */
	uint32_t uid;           /* never 0 */
	char *section;          /* decoded ("1.MIME", "HEADER.FIELDS (From)"),
	                           printable ASCII without brackets; NULL = the
	                           whole message */
	bool partial;           /* ;PARTIAL=o[.l] */
	uint32_t partial_offset;
	uint32_t partial_length;/* 0 = to the end */
};

/* Parses text[0..len) (no NUL needed; a NUL byte is refused). 0 = *url_r
 * filled (free with imap_url_clear); -1 = not such a URL, *error_r static
 * text saying why, *url_r untouched. */
int imap_url_parse(const char *text, size_t len, struct imap_url *url_r, const char **error_r);
void imap_url_clear(struct imap_url *url);

/* text as a BADURL response code's url-resp-text (RFC 4469 §5: any
 * TEXT-CHAR but "]"): "]", control characters and 8-bit bytes are
 * percent-encoded (no URL has them raw, so it is the same URL), keeping
 * the response printable ASCII. Heap string, NULL when out of memory.
 * url-resp-text is never empty: a caller refuses an empty URL otherwise
 * (BAD). */
char *imap_url_resp_text(const char *text, size_t len);

#endif
