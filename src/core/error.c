#include "core/error.h"

static const char *const error_names[TERN_ERR_COUNT] = {
	[TERN_ERR_NONE] = "no error",
	[TERN_ERR_TEMP] = "temporary failure",
	[TERN_ERR_UNAVAILABLE] = "mailbox temporarily unavailable",
	[TERN_ERR_NOQUOTA] = "over quota",
	[TERN_ERR_NOTFOUND] = "not found",
	[TERN_ERR_EXISTS] = "already exists",
	[TERN_ERR_INVALID] = "invalid argument",
	[TERN_ERR_TOOBIG] = "too large",
	[TERN_ERR_IO] = "I/O error",
	[TERN_ERR_NOSPACE] = "no space left on device",
	[TERN_ERR_CORRUPT] = "database corrupt",
	[TERN_ERR_NOMEM] = "out of memory",
	[TERN_ERR_CONFLICT] = "changed concurrently",
};

const char *tern_error_str(enum tern_error err)
{
	if ((unsigned)err >= TERN_ERR_COUNT)
		return "unknown error";
	return error_names[err];
}
