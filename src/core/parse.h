/* The verdict every protocol parser returns (parsers are pure functions over
 * bytes; the session decides what to send). */
#ifndef TERN_CORE_PARSE_H
#define TERN_CORE_PARSE_H

enum tern_parse {
	TERN_PARSE_NEED_MORE,          /* all input consumed, no complete unit yet */
	TERN_PARSE_OK,                 /* one unit complete (command, body, chunk) */
	TERN_PARSE_ERROR_RECOVERABLE,  /* bad unit skipped up to its LF; reply and go on */
	TERN_PARSE_ERROR_FATAL,        /* the stream cannot be resynchronised; reply and close */
};

#endif
