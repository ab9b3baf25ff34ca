/* IMAP dates (RFC 3501 §9): "1-Feb-1994" for SEARCH keys and
 * "17-Jul-1996 02:44:25 -0700" for APPEND and INTERNALDATE. Pure
 * arithmetic, independent of the process time zone. */
#ifndef TERN_PROTO_IMAP_DATE_H
#define TERN_PROTO_IMAP_DATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* "17-Jul-1996 02:44:25 -0700" plus NUL. */
#define IMAP_DATETIME_SIZE 27

/* date = date-text / DQUOTE date-text DQUOTE (the caller strips quotes as
 * the parser already does); day is 1 or 2 digits. *day_r = days since
 * 1970-01-01 of that calendar date. 0 = ok, -1 = invalid (incl. 31-Feb). */
int imap_date_parse(const char *s, size_t len, int64_t *day_r);

/* date-time: day as "dd" or " d", time, zone "+hhmm"/"-hhmm". *t_r = the
 * instant (UTC seconds), *tz_min_r = the zone offset in minutes. 0 / -1. */
int imap_datetime_parse(const char *s, size_t len, int64_t *t_r, int *tz_min_r);

/* Writes t shown in zone tz_min as "dd-Mon-yyyy hh:mm:ss +hhmm" (day padded
 * with a space per RFC 3501 date-day-fixed is accepted on input; output uses
 * two digits, which is also valid). buf holds IMAP_DATETIME_SIZE. 0 / -1
 * (year outside 0..9999 or zone out of range). */
int imap_datetime_format(int64_t t, int tz_min, char buf[IMAP_DATETIME_SIZE]);

/* Calendar helpers shared with SEARCH evaluation. */
int64_t imap_days_from_civil(int64_t y, unsigned m, unsigned d);
void imap_civil_from_days(int64_t days, int64_t *y_r, unsigned *m_r, unsigned *d_r);

#endif
