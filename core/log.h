/* log.h - leveled logging for the broker and tools.
 *
 * One line per call, written with a single write(2) per destination so
 * lines from different shard threads never interleave. Which types of line
 * are written is a process-wide mask read by every thread (a relaxed
 * atomic); changing it is rare. Destinations (mosquitto's log_dest): stderr
 * (the default), stdout, a file (reopened by smq_log_reopen() after
 * logrotate moved it) and syslog.
 */
#ifndef SMQ_LOG_H
#define SMQ_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smq_log_level {
	SMQ_LOG_ERROR = 0,
	SMQ_LOG_WARNING = 1,
	SMQ_LOG_NOTICE = 2,
	SMQ_LOG_INFO = 3,
	SMQ_LOG_DEBUG = 4,
	/* types outside the level order (mosquitto's log_type subscribe and
	 * unsubscribe): written when their bit is in the mask */
	SMQ_LOG_SUBSCRIBE = 5,
	SMQ_LOG_UNSUBSCRIBE = 6,
};

#define SMQ_LOG_ALL_TYPES 0x7fu		/* every 1u << type */

/* Where lines go (any combination; 0: nowhere). */
#define SMQ_LOG_TO_STDERR 1u
#define SMQ_LOG_TO_STDOUT 2u
#define SMQ_LOG_TO_FILE 4u
#define SMQ_LOG_TO_SYSLOG 8u

/* Set the threshold: types up to @level are written (subscribe and
 * unsubscribe too with DEBUG), the others discarded. Default NOTICE. */
void smq_log_set_level(enum smq_log_level level);
/* The highest level written (ERROR when none is). */
enum smq_log_level smq_log_get_level(void);

/* Write exactly the types in @mask (bits 1u << SMQ_LOG_*). */
void smq_log_set_types(unsigned mask);
unsigned smq_log_get_types(void);

struct smq_log_opts {
	unsigned dest;			/* SMQ_LOG_TO_* */
	const char *file;		/* with SMQ_LOG_TO_FILE */
	int facility;			/* syslog: -1 daemon, 0..7 local0..local7 */
	bool timestamp;			/* prefix each line with the time */
	const char *timestamp_format;	/* NULL or "": ISO 8601 UTC with ms;
					 * else strftime(3) of the local time */
};

/* Send lines where @o says, from the next line on. Opens the file (append,
 * created 0640 if missing) before anything changes: on failure returns
 * -errno with @err = "PATH: strerror" and the old settings stay. Safe
 * while other threads log. */
int smq_log_setup(const struct smq_log_opts *o, char *err, size_t errlen);

/* Reopen the log file at its path (SIGHUP after logrotate renamed it).
 * 0, or -errno (the old file stays in use). Nothing to do without a file. */
int smq_log_reopen(void);

/* Parse "error", "warning", "notice", "info", "debug"; -EINVAL otherwise. */
int smq_log_parse_level(const char *s, enum smq_log_level *out);

/* The file descriptor of the stderr destination (default 2). */
void smq_log_set_fd(int fd);

bool smq_log_enabled(enum smq_log_level level);

/* printf-style; a newline is appended. Safe from any thread. */
void smq_log(enum smq_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Format an error message into a caller's buffer (@err may be NULL or
 * @errlen 0: nothing is written). For functions that return -errno and
 * explain themselves in words. */
void smq_errbuf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Rate limit for errors that can recur at line rate: true (and *@last_ms
 * set to @now_ms) when the last line was at least @period_ms ago or never.
 * The caller owns *@last_ms (per thread, or per object). */
bool smq_log_due(uint64_t *last_ms, uint64_t now_ms, uint64_t period_ms);

#define smq_err(...) smq_log(SMQ_LOG_ERROR, __VA_ARGS__)
#define smq_warn(...) smq_log(SMQ_LOG_WARNING, __VA_ARGS__)
#define smq_notice(...) smq_log(SMQ_LOG_NOTICE, __VA_ARGS__)
#define smq_info(...) smq_log(SMQ_LOG_INFO, __VA_ARGS__)
#define smq_debug(...)                                                                             \
	do {                                                                                       \
		if (smq_log_enabled(SMQ_LOG_DEBUG))                                                \
			smq_log(SMQ_LOG_DEBUG, __VA_ARGS__);                                       \
	} while (0)

#endif
