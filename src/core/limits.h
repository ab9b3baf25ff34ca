/* Every limit Tern enforces, in one place: a default, a hard ceiling, and why.
 * The config may tune a limit up to its ceiling but never switch it off;
 * parsers receive their limits at creation and check before allocating.
 * Fixed limits and the watermarks of buffers and queues live here too, so
 * that what bounds memory and waiting can be read in one file. */
#ifndef TERN_CORE_LIMITS_H
#define TERN_CORE_LIMITS_H

/* Longest protocol command line (bytes, CRLF included). RFC 5321 says 512 for
 * SMTP commands but IMAP command lines with long UID sets need more. */
#define TERN_LINE_LENGTH_DEFAULT        (64u * 1024)
#define TERN_LINE_LENGTH_MIN            1024u
#define TERN_LINE_LENGTH_CEILING        (1024u * 1024)

/* Largest message accepted by LMTP or APPEND. The minimum leaves room for
 * the headers of an ordinary message: less would refuse all mail. */
#define TERN_MESSAGE_SIZE_DEFAULT       (50ull * 1024 * 1024)
#define TERN_MESSAGE_SIZE_MIN           1024u
#define TERN_MESSAGE_SIZE_CEILING       (1024ull * 1024 * 1024)

/* Largest IMAP literal other than an APPEND message (search strings, names).
 * The minimum still fits a folder name (TERN_FOLDER_NAME_MAX). */
#define TERN_LITERAL_SIZE_DEFAULT       (64u * 1024)
#define TERN_LITERAL_SIZE_MIN           1024u
#define TERN_LITERAL_SIZE_CEILING       (16u * 1024 * 1024)

/* All the non-message literals of one IMAP command together may be this many
 * times max_literal_size: a command with many literals (a SEARCH with many
 * strings) is buffered whole, so each literal's limit alone would not bound
 * it. */
#define TERN_OTHER_LITERALS_FACTOR      4

/* A refused IMAP non-synchronising literal ({n+} over its limit, or ending a
 * refused line) is read and thrown away, and the session goes on (RFC 7888
 * §4), when it is at most this many times max_message_size (as narrowed
 * before login); a bigger one ends the connection: no client that read
 * APPENDLIMIT sends it, and skipping it would cost more than a reconnect. */
#define TERN_DISCARD_LITERAL_FACTOR     2

/* Parse-tree depth bounds: the parsers recurse (or keep a stack) per level,
 * so a client nesting deeper gets a BAD before it costs stack or time. No
 * real command comes close: IMAP parenthesised lists (BODY[HEADER.FIELDS
 * (...)], FETCH attribute lists) nest a few levels; SEARCH keys (parentheses,
 * NOT, OR) a few more. */
#define TERN_IMAP_PARSER_DEPTH_MAX      32
#define TERN_SEARCH_DEPTH_MAX           64
/* BODY and TEXT keys in one search program (SEARCH, SORT, THREAD, a
 * context): one message is scanned once per such key within one slice of the
 * loop thread, so 1,000 of them over a 2 MiB message held it 82 ms (and
 * seconds at max_message_size). Clients send one to a few. */
#define TERN_SEARCH_BODY_KEYS_MAX       16

/* SORT criteria in one command; more is a BAD. There are only nine sort keys,
 * so more than this only repeats them, and the program is a fixed array. */
#define TERN_SORT_CRITERIA_MAX          16

/* CATENATE (RFC 4469): one URL's text, and the URL parts of one APPEND.
 * A URL part reads its message, or the part of it its section needs, from
 * the store on the loop thread (as FETCH does), a piece at a time across
 * loop turns (cmd-append.c), so their number bounds what one command can
 * make the server read; a real client names a few parts of one or two
 * messages. */
#define TERN_IMAP_URL_MAX               2048
#define TERN_CATENATE_URLS_MAX          64

/* Levels of a FETCH body section's part number (BODY[1.2.3...]): deeper MIME
 * nesting than any sane message, and it bounds the part string built for
 * each look-up. */
#define TERN_FETCH_PART_DEPTH_MAX       64

/* Before login a literal can only be a user name, a password or an ID
 * value, so none may be larger than this (nor than max_literal_size): a
 * bigger synchronising one gets a tagged NO and no continuation, a bigger
 * LITERAL+ one ends the connection (past TERN_DISCARD_LITERAL_FACTOR times
 * this; up to that it is read, thrown away and refused). Literal bytes are buffered, so an
 * anonymous client must not get to announce a message's worth. */
#define TERN_PREAUTH_LITERAL_MAX        4096u

/* Open IMAP and POP3 client connections per node (LMTP has its own budget). */
#define TERN_CONNECTIONS_DEFAULT        20000u
#define TERN_CONNECTIONS_CEILING        1000000u

/* LMTP has a budget of its own so client connections can never take the
 * MTA's slots (a full client budget would make every delivery defer). */
#define TERN_LMTP_CONNECTIONS_DEFAULT   1000u

/* Connections from one address that have not logged in yet: one host cannot
 * hold the node's whole budget with idle pre-login sockets. */
#define TERN_PREAUTH_PER_ADDRESS_DEFAULT 50u

/* From connect to a successful login (IMAP/POP3), not reset by input, so a
 * client trickling a byte at a time cannot hold a pre-login slot for long. */
#define TERN_LOGIN_TIMEOUT_MS_DEFAULT   (60u * 1000)

/* Password checks waiting or running (each costs milliseconds of CPU), for
 * the node and for one client address: a guesser fills its own share only.
 * The ceiling is far past any useful queue (a million checks take hours). */
#define TERN_AUTH_PENDING_DEFAULT       256u
#define TERN_AUTH_PENDING_PER_ADDRESS_DEFAULT 8u
#define TERN_AUTH_PENDING_CEILING       1000000u

/* Threads that check passwords. Two keep a burst of logins from waiting on
 * one hash while leaving the CPUs to the loops; the queue above, not more
 * threads, is what absorbs a burst. */
#define TERN_AUTH_WORKERS               2u

/* The base delay before a failed login is answered (auth_failure_delay).
 * The ceiling keeps a typo from holding every failed client for minutes. */
#define TERN_AUTH_FAILURE_DELAY_MS_DEFAULT 2000u
#define TERN_AUTH_FAILURE_DELAY_MS_CEILING (60u * 1000)

/* The failure delay doubles with each recent failure of the user or the
 * address, up to this (or the base delay if larger): long enough to make
 * guessing slow, short enough that a user who mistyped is not locked out. */
#define TERN_AUTH_DELAY_CAP_MS          15000u

/* Failures of a user or an address count for this long after the latest
 * one: a guesser that pauses less than this keeps its penalty. */
#define TERN_AUTH_FAILURE_WINDOW_MS     (15u * 60 * 1000)

/* Users and addresses with recent failures remembered per shard of the
 * failure table (64 shards): memory stays fixed however many addresses a
 * guesser uses; when a shard is full its least recent entry goes. */
#define TERN_AUTH_FAIL_SLOTS            128u

/* A login waiting out a penalty looks at its connection this often: the
 * connection cannot tell it about a hang-up or a server stop, and neither
 * should hold the connection (and its address's slot) for a whole penalty. */
#define TERN_AUTH_WAIT_SLICE_MS         250u

/* The padding of failed checks to one duration stops here: beyond it a hash
 * is misconfigured, not a reason to slow every failure. */
#define TERN_AUTH_PAD_MAX_US            (1000u * 1000u)

/* Logins of one address refused with no gap this long are one episode,
 * logged once: a guesser refused thousands of times a second must not
 * flood the log. */
#define TERN_AUTH_REFUSAL_QUIET_MS      (60u * 1000)

/* Bad commands in a row before a session is closed (421 / * BYE / -ERR). */
#define TERN_BAD_COMMANDS_DEFAULT       10u
#define TERN_BAD_COMMANDS_CEILING       1000u

/* Recipients in one LMTP transaction (RFC 5321 §4.5.3.1.8 asks for >= 100). */
#define TERN_RECIPIENTS_DEFAULT         1000u
#define TERN_RECIPIENTS_CEILING         100000u

/* A login or an address as a client may send it, and a folder name
 * component, in bytes. */
#define TERN_USERNAME_MAX               255u
#define TERN_FOLDER_NAME_MAX            1024u

/* Longest LIST reference + pattern. A name is at most TERN_FOLDER_NAME_MAX,
 * so a longer pattern matches nothing more and only costs matching time
 * (matching one name takes name length times pattern length steps). */
#define TERN_LIST_PATTERN_MAX           (4u * TERN_FOLDER_NAME_MAX)

/* Longest password accepted: a longer one is not a password but an attempt
 * to make the hash work on megabytes. */
#define TERN_PASSWORD_MAX               1024u

/* A canonical user name: the local part of an address (RFC 5321 §4.5.3.1.1
 * allows 64 octets), and the name of the user's store file. */
#define TERN_USERNAME_CANONICAL_MAX     64u

/* The domain of an address (RFC 5321 §4.5.3.1.2: 255 octets). */
#define TERN_DOMAIN_MAX                 255u

/* How long SIGTERM waits for in-flight transactions before exiting; a
 * service manager stops waiting long before the ceiling. */
#define TERN_SHUTDOWN_TIMEOUT_MS_DEFAULT 10000u
#define TERN_SHUTDOWN_TIMEOUT_MS_CEILING (3600u * 1000)

/* Idle client timeout (RFC 3501 §5.4 asks for at least 30 minutes for IMAP).
 * The same range for lmtp_timeout: under a second drops clients between
 * two commands; over a day an idle socket is a leak. */
#define TERN_IDLE_TIMEOUT_MS_DEFAULT    (30u * 60 * 1000)
#define TERN_LMTP_TIMEOUT_MS_DEFAULT    (5u * 60 * 1000)
#define TERN_IDLE_TIMEOUT_MS_MIN        1000u
#define TERN_IDLE_TIMEOUT_MS_CEILING    (24u * 3600 * 1000)

/* login_timeout's range: under a second no client gets through a TLS
 * handshake and a login; an hour is already generous to a slow one. */
#define TERN_LOGIN_TIMEOUT_MS_MIN       1000u
#define TERN_LOGIN_TIMEOUT_MS_CEILING   (3600u * 1000)

/* The watchdog reports a lock held or a request in flight past this. Under
 * 10 ms it would report ordinary scheduling delays. */
#define TERN_WATCHDOG_THRESHOLD_MS_DEFAULT 5000u
#define TERN_WATCHDOG_THRESHOLD_MS_MIN  10u
#define TERN_WATCHDOG_THRESHOLD_MS_CEILING (3600u * 1000)

/* Loop threads (worker_threads; 0 = one per CPU). Each has its own event
 * base and caches: more than a very large host has CPUs buys nothing. */
#define TERN_WORKER_THREADS_CEILING     1024u

/* Input read from a client while its connection waits on async work (the
 * failure delay after a bad login, a delivery): enough for a few pipelined
 * commands and the hang-up after them, so a client that leaves is noticed at
 * once, while a client that keeps sending waits in its socket buffer. */
#define TERN_PAUSED_INPUT_MAX           (16u * 1024)

/* When accept() fails for lack of descriptors or kernel memory, listeners
 * stop for this long before trying again instead of spinning on a listening
 * socket that stays readable. */
#define TERN_ACCEPT_BACKOFF_MS          100u

/* A shortage of descriptors ends after this long without a failed accept():
 * under sustained pressure accepts succeed and fail by turns, and one
 * episode must not log two lines per turn. */
#define TERN_ACCEPT_SHORTAGE_QUIET_MS   (10u * TERN_ACCEPT_BACKOFF_MS)

/* Connections the kernel may queue on a listening socket before the main
 * thread accepts them: a burst of clients reconnecting at once (after a
 * restart) is queued rather than refused. The kernel caps it at somaxconn. */
#define TERN_LISTEN_BACKLOG             1024

/* Replies a client may leave unread before its next command waits (the
 * connection stops reading until they drain to the low mark): a client
 * that pipelines commands and never reads cannot make the server buffer
 * without bound. The low mark leaves room to refill before the socket runs
 * dry. */
#define TERN_CONN_OUTPUT_HIGH           (1024u * 1024)
#define TERN_CONN_OUTPUT_LOW            (256u * 1024)

/* A FETCH stops producing responses above this much unsent output and
 * resumes below the low mark: a client fetching a whole folder while reading
 * slowly holds a few megabytes of the server, not the folder. */
#define TERN_FETCH_OUTPUT_HIGH          (4u * 1024 * 1024)
#define TERN_FETCH_OUTPUT_LOW           (1u * 1024 * 1024)

/* NOTIFY (RFC 5465 section 6): unsent output above which a session's
 * notifications stop with * OK [NOTIFICATIONOVERFLOW] instead of piling up
 * for a client that does not read. Above a FETCH's high mark, so a client
 * reading a large FETCH is not taken for one. */
#define TERN_NOTIFY_OUTPUT_MAX          (16u * 1024 * 1024)

/* Parser buffers: an idle connection keeps a line buffer of at most
 * TERN_LINE_BUF_KEEP (a larger one, from a long line, is freed after use),
 * and the buffers of literals and LMTP bodies start at these sizes and grow
 * only as bytes arrive, never to the size a client announces: a client that
 * announces a large literal and sends nothing holds no more than the first
 * allocation. */
#define TERN_LINE_BUF_KEEP              4096
#define TERN_LITERAL_BUF_FIRST          (64u * 1024)
#define TERN_LMTP_LINE_BUF_FIRST        256
#define TERN_LMTP_BODY_BUF_FIRST        8192

/* Tasks each loop thread keeps aside for posts that find no memory: a lost
 * post is a reply its connection waits for until the client gives up. The
 * posts in flight at once are about one per connection waiting on async
 * work (a delivery, a login); past this the poster waits for memory. */
#define TERN_LOOP_TASK_RESERVE          1024u

/* Requests each of the password check and directory look-up pools keeps
 * aside for a caller that finds no memory for one: it still gets its answer
 * (a temporary failure) through the normal path, on the next turn of its
 * loop, which is as long as one is held. Past them the caller waits for
 * memory, as a post does. */
#define TERN_REQUEST_RESERVE            16u

/* Keywords on one message. Cyrus has room for 128 user flags in a whole
 * mailbox and advertises 100 keywords per email over JMAP (RFC 8621
 * maxKeywordsPerEmail), so no real client needs more; it bounds what one
 * STORE or APPEND makes every step of the keyword path handle. A message
 * already over it keeps its keywords and may lose some, but gains none. */
#define TERN_KEYWORDS_PER_MESSAGE_MAX   128u

/* Distinct keywords in one folder, as its IMAP sessions know them. Every
 * FLAGS/PERMANENTFLAGS line lists all of them, so this bounds those lines
 * (a few tens of KB) and the view's keyword set. 1000 is eight times what
 * Cyrus allows; at the limit PERMANENTFLAGS drops \* (RFC 3501 §7.1) and a
 * STORE of a keyword the folder does not have gets NO [LIMIT]. */
#define TERN_KEYWORDS_PER_FOLDER_MAX    1000u

/* How long one command (SEARCH, SORT, THREAD over a big folder) runs before
 * it gives its loop thread back to the other sessions for a turn. Another
 * session's reply can wait up to two slices: its command is read in the
 * turn after the slice it arrived in, and its reply written in the turn
 * after the next one. 5 ms keeps that well under the 25 ms a session may be
 * held up by another (issue 8); with 10 ms a NOOP waited up to 34 ms. */
#define TERN_COMMAND_SLICE_MS           5u

/* Work between looks at the clock in the sliced commands: enough to make
 * the clock's cost vanish, little enough that a slice overruns
 * TERN_COMMAND_SLICE_MS by microseconds. The search phase of a SORT or
 * THREAD evaluates this many messages on metadata alone (a fraction of a microsecond each;
 * anything that reads the store looks after every message); the merge sort
 * merges TERN_SORT_MERGE_CHECK elements, and THREAD's build steps over
 * TERN_THREAD_STEP_CHECK messages, roots or containers. */
#define TERN_SORT_RUN_CHECK             64
#define TERN_SORT_MERGE_CHECK           256
#define TERN_THREAD_STEP_CHECK          64

/* The stepwise merge sort (SORT, THREAD ORDEREDSUBJECT) first sorts runs of
 * this many indices with qsort_r, each in one go without a look at the
 * clock: it bounds how far one run can overrun a slice. */
#define TERN_INDEX_SORT_RUN             2048

/* Messages a FETCH reads in one SQLite read transaction: enough to save the
 * lock traffic, few enough that a writer's checkpoint (which waits for
 * readers of old snapshots) never waits long for this session. */
#define TERN_FETCH_READ_TX_MSGS         128

/* Stale cached parses (store schema v6) one task on the user's worker
 * writes back before it yields to deliveries (the next task goes on):
 * about 10-50 ms of parsing for ordinary messages. */
#define TERN_STORE_STALE_FIX_PER_TASK   512

/* Message text read for a header-only SEARCH key (HEADER, FROM, ...): most
 * headers end within it, and search-eval reads the rest when one goes on.
 * SORT and THREAD read a header TERN_SORT_HEAD_FIRST at a time and never
 * more than TERN_SORT_HEAD_MAX of it: a message with a megabyte of header
 * costs every sort of its folder no more than that. */
#define TERN_SEARCH_HEAD_BYTES          (16u * 1024)
#define TERN_SORT_HEAD_FIRST            (8u * 1024)
#define TERN_SORT_HEAD_MAX              (256u * 1024)

/* References of one message THREAD uses (the newest kept): more add nothing
 * to a thread, and each costs a container look-up in the build. */
#define TERN_THREAD_REFS_MAX            256

/* How long a store call waits for another handle's write lock (SQLite's
 * busy timeout) before it fails with a temporary error. Request paths wait
 * less: TERN_STORE_WRITE_DEADLINE_MS counts from the request. */
#define TERN_STORE_BUSY_TIMEOUT_MS      5000u

/* The same for the directory (SQLite's busy timeout on its handles): long
 * enough to ride out another process's write, short enough that a wedged
 * writer turns into TERN_ERR_TEMP rather than a hang. */
#define TERN_DIRECTORY_BUSY_TIMEOUT_MS  5000

/* A session's store write (STORE, EXPUNGE, COPY, folder changes, POP3's
 * QUIT) is answered within this: queued behind others on its worker or
 * waiting for a lock another process holds on the store, it then ends with
 * a temporary error (NO [UNAVAILABLE], -ERR [SYS/TEMP]) instead of leaving
 * the client waiting on a disk or a lock. */
#define TERN_STORE_WRITE_DEADLINE_MS    5000u

/* A directory look-up on a request path (LMTP RCPT, a login's password
 * check, an IMAP session's quota refresh) is answered within this. The
 * look-up runs on a worker thread; a directory that cannot be read in
 * time (locked by another process, wedged, on a stalled disk) then gives
 * the request a temporary error (451 4.3.0, NO [UNAVAILABLE],
 * -ERR [SYS/TEMP]) and the worker's late answer is dropped. */
#define TERN_LOOKUP_DEADLINE_MS         5000u

/* Threads doing those look-ups. A look-up is one indexed read of a small,
 * hot file: two keep RCPTs flowing while one waits on a slow read, and a
 * wedged directory wedges every look-up anyway. */
#define TERN_LOOKUP_WORKERS             2u

/* An IMAP session reads its quota limit with the login's directory row;
 * once its copy is this old, the next quota check (APPEND, COPY, GETQUOTA)
 * still uses it but starts a refresh off the loop thread, so a limit
 * changed with ternctl reaches a long session within about this long. */
#define TERN_QUOTA_REFRESH_MS           (60u * 1000)

/* Each loop thread keeps the views its sessions closed, so that the next
 * SELECT of a big folder applies the changes since instead of reading every
 * message row. At most this many views and messages in all (about 12 MB)
 * per loop thread; folders under TERN_VIEW_CACHE_MIN_MSGS load fast anyway
 * and are not kept. */
#define TERN_VIEW_CACHE_MIN_MSGS        256
#define TERN_VIEW_CACHE_ENTRIES         16
#define TERN_VIEW_CACHE_MSGS            500000

/* View snapshots in the store (the message list as a session last saw it,
 * one row to read on the first SELECT after a restart): kept for folders of
 * at least TERN_SNAPSHOT_MIN_MSGS (smaller ones read fast anyway) and
 * rewritten once TERN_SNAPSHOT_STALE modseqs behind, which bounds the
 * changes a SELECT must apply on top of one. */
#define TERN_SNAPSHOT_MIN_MSGS          1000
#define TERN_SNAPSHOT_STALE             128

/* The delivery journal starts a new segment once the current one grows past
 * this; a segment is deleted when every store written under it has been
 * checkpointed. At most TERN_JOURNAL_SEGMENTS_MAX are replayed at start. */
#define TERN_JOURNAL_SEGMENT_BYTES      (64ull * 1024 * 1024)
#define TERN_JOURNAL_SEGMENTS_MAX       4096u

/* A store remembers the deliveries it applied (so that a journal replay
 * does not apply one twice) for this long. Delivery ids are microsecond
 * timestamps, and a journal record is checkpointed or replayed long before
 * it is this old; older ids are pruned so the table does not grow forever. */
#define TERN_DELIVERED_KEEP_US          (30ull * 24 * 3600 * 1000000)

/* Apply workers (the one writer of each user's store): more than the CPUs,
 * so one waiting on the disk does not idle a core. Each keeps up to
 * TERN_WORKER_STORE_HANDLES stores open (three descriptors each) and
 * checkpoints TERN_WORKER_CHECKPOINTS_PER_ROUND per round, which spreads a
 * segment's fsyncs over many rounds. */
#define TERN_APPLY_WORKERS              4u
#define TERN_WORKER_STORE_HANDLES       1024u
#define TERN_WORKER_CHECKPOINTS_PER_ROUND 4u

/* MIME parsing caps, not tunables: they bound work and output on hostile
 * input (Dovecot's message parser has similar nesting and part limits).
 * RFC 2046 §5.1.1 allows 70 characters in a boundary; we are lenient but
 * bounded. */
#define TERN_MIME_DEPTH_MAX             50
#define TERN_MIME_PARTS_MAX             10000
#define TERN_MIME_BOUNDARY_MAX          200

/* IMAP strings Tern sends (FETCH data, ENVELOPE and BODYSTRUCTURE fields)
 * longer than this go out as literals even when they could be quoted: some
 * clients cap quoted strings. */
#define TERN_IMAP_QUOTED_MAX            1024

/* A FETCH of many messages reads their metadata this many at a time (about
 * 1 ms each on a warm store) instead of the whole folder in one query. */
#define TERN_FETCH_LIST_CHUNK           2048u

/* The cluster channel (docs/cluster.md). */
#define TERN_CLUSTER_TIMEOUT_MS_DEFAULT    5000u
#define TERN_CLUSTER_TIMEOUT_MS_MIN        100u
#define TERN_CLUSTER_TIMEOUT_MS_CEILING    (120u * 1000)
#define TERN_CLUSTER_CONNECTIONS_DEFAULT   2000u
#define TERN_CLUSTER_SECRET_MIN            16u
#define TERN_CLUSTER_SECRET_MAX            1024u
#define TERN_CLUSTER_NODE_NAME_MAX         64u
#define TERN_CLUSTER_PARAMS_MAX            512u
/* An authenticated connection waiting for its OPEN (a pooled spare) is
 * closed by the listener after this long; the dialler retires its spares
 * sooner (TERN_CLUSTER_SPARE_AGE_MS) so it never hands out one being closed. */
#define TERN_CLUSTER_IDLE_MS               60000u
#define TERN_CLUSTER_SPARE_AGE_MS          30000u
/* Spare authenticated connections a loop keeps to each node it talks to,
 * so a proxied login pays no connect and handshake. */
#define TERN_CLUSTER_SPARES                2u
/* Idle LMTP channels a loop keeps to each node, between relayed deliveries. */
#define TERN_CLUSTER_PARKED                8u
/* Moves: a source's store work for a move (a whole copy of a big mailbox)
 * may take this long; a move channel idle this long is closed. */
#define TERN_MOVE_TASK_DEADLINE_MS         (10u * 60 * 1000)
#define TERN_MOVE_IDLE_MS                  (5u * 60 * 1000)
/* The mover (destination): every socket read or write bounded by this; a
 * move's lease, renewed at each step; moves run at once per node; how often
 * it looks for new ones and how often a suspended move syncs. */
#define TERN_MOVE_IO_TIMEOUT_MS            30000u
#define TERN_MOVE_LEASE_MS                 30000
#define TERN_MOVER_PARALLEL                4u
#define TERN_MOVER_SCAN_MS                 1000u
#define TERN_MOVER_READY_POLL_MS           500u
/* How often a node looks for copies that moves out of it left behind. */
#define TERN_MOVER_ORPHANS_MS              10000
/* Sync rounds end when one brings at most this many changes (or applies
 * in well under move_freeze_target), or after this many rounds. */
#define TERN_MOVE_FINAL_CHANGES            64u
#define TERN_MOVE_MAX_ROUNDS               20u
/* Delivery ids (core/delivery-id.h) are only roughly ordered between
 * workers: each round asks again for a minute's worth below the highest. */
#define TERN_MOVE_DELIVERED_MARGIN         (60ull * 1000 * 1000)
/* A source sends a copy read by its worker in chunks of this size, the
 * next one once the channel's output is below TERN_MOVE_SEND_LOW: the loop
 * never touches the file, and a slow destination holds at most that much. */
#define TERN_MOVE_SEND_CHUNK               (512u * 1024)
#define TERN_MOVE_SEND_LOW                 (1024u * 1024)
/* A freeze waits for the deliveries accepted before it, looking this
 * often: the user is unavailable meanwhile, so the step is fine. */
#define TERN_MOVE_SETTLE_POLL_MS           1u
/* This long before a fence with a deadline lapses, the source looks
 * whether the move switched anyway (then it fences for good); a mover
 * switches no later than twice this before the lapse. */
#define TERN_MOVE_FENCE_CHECK_MARGIN_MS    500
/* A timed fence lasts at least this long: beyond the user cache's trust
 * (a heartbeat, then TERN_USER_CACHE_TRUST_MS). */
#define TERN_MOVE_FENCE_MIN_MS             5000u
/* A move in one phase longer than this (or watchdog_threshold if longer)
 * is reported by the mover's scan. */
#define TERN_MOVE_STUCK_MIN_MS             60000
/* At start, how long a previous run of this node_name gets to answer a
 * connect on one of its addresses before it counts as not running. */
#define TERN_NODE_PROBE_MS                 500
/* Relayed bytes buffered towards one side before reading from the other
 * pauses (both directions of a proxied session). */
#define TERN_PROXY_BUFFER_HIGH             (256u * 1024)
#define TERN_PROXY_BUFFER_LOW              (64u * 1024)
/* A relay reads its channel in chunks this big until the socket is empty
 * (libevent's own reads are 4 KiB each, one per loop turn), up to
 * TERN_PROXY_READ_TURN bytes a turn so one session cannot hold its loop. */
#define TERN_PROXY_READ_CHUNK              (64u * 1024)
#define TERN_PROXY_READ_TURN               (1024u * 1024)
/* What a bulk connection's socket layer writes a turn (conn_set_bulk). */
#define TERN_BULK_WRITE_MAX                (256u * 1024)

/* The node registry (src/server/node-registry.c): each ternd writes a
 * heartbeat to its row in the directory this often, and a node whose last
 * heartbeat is older than TERN_NODE_DOWN_AFTER_MS counts as down (ternctl
 * node list, and another ternd may take its name over). Five beats, so one
 * slow directory write does not make a node look down. */
#define TERN_NODE_HEARTBEAT_MS          1000u
#define TERN_NODE_DOWN_AFTER_MS         5000u

/* The user cache (src/server/user-cache.h): at most TERN_USER_CACHE_MAX
 * users' directory answers per node (about 300 bytes each), in
 * TERN_USER_CACHE_SHARDS shards. Names, home node names, cluster addresses
 * and states longer than these are not cached (read from the directory each
 * time). The cache answers only while the directory's change counter was
 * read within TERN_USER_CACHE_TRUST_MS (it is read at every node heartbeat):
 * a poller stuck on the directory does not leave old answers in force. */
#define TERN_USER_CACHE_MAX             32768u
#define TERN_USER_CACHE_SHARDS          64u
#define TERN_USER_CACHE_NAME_MAX        64u
#define TERN_USER_CACHE_HOME_MAX        64u
#define TERN_USER_CACHE_ADDR_MAX        96u
#define TERN_USER_CACHE_STATE_MAX       15u
#define TERN_USER_CACHE_TRUST_MS        (3u * TERN_NODE_HEARTBEAT_MS)

/* Freezing a user (src/server/freeze.h), the final phase of a move: a
 * logon or delivery for a frozen user is parked for move_freeze_timeout
 * (default, bounds) before a temporary error. The freeze table has
 * TERN_FREEZE_SHARDS shards of TERN_FREEZE_BUCKETS hash chains each (O(1)
 * with 10,000 users frozen). A parked request that finds its user's entry
 * lock taken tries again every TERN_FREEZE_RETRY_MS until its deadline
 * (never a blocking lock on a loop thread). A lease is at most
 * TERN_FREEZE_LEASE_MAX_MS; the reaper thread ending leases looks at least
 * every TERN_FREEZE_REAPER_MAX_MS. Node names and cluster addresses of a
 * "moved" outcome are at most TERN_FREEZE_NODE_MAX / TERN_FREEZE_ADDR_MAX
 * bytes. */
#define TERN_MOVE_FREEZE_TIMEOUT_MS_DEFAULT 5000u
#define TERN_MOVE_FREEZE_TIMEOUT_MS_MIN     10u
#define TERN_MOVE_FREEZE_TIMEOUT_MS_CEILING (120u * 1000)
#define TERN_FREEZE_SHARDS              64u
#define TERN_FREEZE_BUCKETS             256u
#define TERN_FREEZE_RETRY_MS            5u
#define TERN_FREEZE_LEASE_MAX_MS        (600u * 1000)
#define TERN_FREEZE_REAPER_MAX_MS       1000u
#define TERN_FREEZE_NODE_MAX            64u
#define TERN_FREEZE_ADDR_MAX            96u

#endif
