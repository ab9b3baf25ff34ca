/* Protocol-neutral error codes returned by store/ and directory/.
 * Those modules never log; the session that handles an error logs it once
 * and maps it to an IMAP/POP3/LMTP reply (see proto/reply.h). */
#ifndef TERN_CORE_ERROR_H
#define TERN_CORE_ERROR_H

enum tern_error {
	TERN_ERR_NONE = 0,
	TERN_ERR_TEMP,          /* transient failure (SQLITE_BUSY past timeout, ...) */
	TERN_ERR_UNAVAILABLE,   /* user frozen by a move, or fenced by epoch */
	TERN_ERR_NOQUOTA,       /* over quota */
	TERN_ERR_NOTFOUND,      /* no such user/folder/message */
	TERN_ERR_EXISTS,        /* already exists */
	TERN_ERR_INVALID,       /* bad argument (name, flag, ...) */
	TERN_ERR_TOOBIG,        /* over a size limit */
	TERN_ERR_IO,            /* I/O error from the OS or SQLite */
	TERN_ERR_NOSPACE,       /* disk full */
	TERN_ERR_CORRUPT,       /* database failed a consistency check */
	TERN_ERR_NOMEM,
	TERN_ERR_CONFLICT,      /* a compare-and-set found another state than expected */
	TERN_ERR_COUNT
};

/* Short lowercase description ("temporary failure", "not found", ...). */
const char *tern_error_str(enum tern_error err);

#endif
