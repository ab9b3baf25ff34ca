/* IMAP date parsing and formatting: see imap-date.h. The day counting uses
 * the proleptic Gregorian calendar with years shifted to start in March, so
 * the leap day is the last day of the shifted year. */
#include "proto/imap/imap-date.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

int64_t imap_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void imap_civil_from_days(int64_t z, int64_t *y_r, unsigned *m_r, unsigned *d_r)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	unsigned d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	unsigned m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y_r = yoe + era * 400 + (m <= 2);
	*m_r = m;
	*d_r = d;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned dm[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : dm[m - 1];
}

static bool digits(const char *s, size_t n, unsigned *v_r)
{
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*v_r = v;
	return true;
}

/* "d-Mon-yyyy" or "dd-Mon-yyyy" (or " d-..." when space_pad) at s; returns
 * bytes used, 0 if invalid. */
static size_t parse_date_text(const char *s, size_t len, bool space_pad, int64_t *day_r)
{
	size_t dlen;
	unsigned d, m, y;

	if (len >= 2 && s[1] == '-')
		dlen = 1;
	else if (len >= 3 && s[2] == '-')
		dlen = 2;
	else
		return 0;
	if (space_pad && dlen == 2 && s[0] == ' ') {
		if (!digits(s + 1, 1, &d))
			return 0;
	} else if (!digits(s, dlen, &d)) {
		return 0;
	}
	const char *mon = s + dlen + 1;
	if (len < dlen + 1 + 3 + 1 + 4 || mon[3] != '-')
		return 0;
	for (m = 0; m < 12 && strncasecmp(mon, months[m], 3) != 0; m++)
		;
	if (m == 12 || !digits(mon + 4, 4, &y))
		return 0;
	m++;
	if (d < 1 || d > days_in_month(y, m))
		return 0;
	*day_r = imap_days_from_civil(y, m, d);
	return dlen + 1 + 3 + 1 + 4;
}

int imap_date_parse(const char *s, size_t len, int64_t *day_r)
{
	int64_t day;

	if (parse_date_text(s, len, false, &day) != len)
		return -1;
	*day_r = day;
	return 0;
}

int imap_datetime_parse(const char *s, size_t len, int64_t *t_r, int *tz_min_r)
{
	int64_t day;
	unsigned hh, mm, ss, zh, zm;

	/* RFC 3501 date-day-fixed: always two characters. */
	if (len != 26 || parse_date_text(s, len, true, &day) != 11)
		return -1;
	const char *t = s + 11;
	if (t[0] != ' ' || t[3] != ':' || t[6] != ':' || t[9] != ' ' ||
	    !digits(t + 1, 2, &hh) || !digits(t + 4, 2, &mm) || !digits(t + 7, 2, &ss) ||
	    (t[10] != '+' && t[10] != '-') || !digits(t + 11, 2, &zh) ||
	    !digits(t + 13, 2, &zm))
		return -1;
	if (hh > 23 || mm > 59 || ss > 60 || zm > 59)
		return -1;
	int tz = (int)(zh * 60 + zm) * (t[10] == '-' ? -1 : 1);
	*t_r = day * 86400 + hh * 3600 + mm * 60 + ss - (int64_t)tz * 60;
	*tz_min_r = tz;
	return 0;
}

int imap_datetime_format(int64_t t, int tz_min, char buf[IMAP_DATETIME_SIZE])
{
	if (tz_min <= -100 * 60 || tz_min >= 100 * 60)
		return -1;
	int64_t local = t + (int64_t)tz_min * 60;
	int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
	int64_t secs = local - days * 86400, y;
	unsigned m, d;

	imap_civil_from_days(days, &y, &m, &d);
	if (y < 0 || y > 9999)
		return -1;
	int az = tz_min < 0 ? -tz_min : tz_min;
	char tmp[64];   /* the ranges above make it 26 chars; gcc cannot see that */
	int n = snprintf(tmp, sizeof(tmp), "%02u-%s-%04d %02d:%02d:%02d %c%02d%02d", d,
		 months[m - 1], (int)y, (int)(secs / 3600), (int)(secs / 60 % 60),
		 (int)(secs % 60), tz_min < 0 ? '-' : '+', az / 60, az % 60);
	if (n != IMAP_DATETIME_SIZE - 1)
		return -1;
	memcpy(buf, tmp, IMAP_DATETIME_SIZE);
	return 0;
}
