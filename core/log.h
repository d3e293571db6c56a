/* log.h - leveled logging for the broker and tools.
 *
 * One line per call, written with a single write(2) so lines from different
 * shard threads never interleave. The level is a process-wide setting read
 * racily by every thread (a relaxed atomic); changing it is rare.
 */
#ifndef SMQ_LOG_H
#define SMQ_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum smq_log_level {
	SMQ_LOG_ERROR = 0,
	SMQ_LOG_WARNING = 1,
	SMQ_LOG_NOTICE = 2,
	SMQ_LOG_INFO = 3,
	SMQ_LOG_DEBUG = 4,
};

/* Set the threshold: messages above it are discarded. Default NOTICE. */
void smq_log_set_level(enum smq_log_level level);
enum smq_log_level smq_log_get_level(void);

/* Parse "error", "warning", "notice", "info", "debug"; -EINVAL otherwise. */
int smq_log_parse_level(const char *s, enum smq_log_level *out);

/* Redirect output (default 2, stderr). */
void smq_log_set_fd(int fd);

bool smq_log_enabled(enum smq_log_level level);

/* printf-style; a newline is appended. Safe from any thread. */
void smq_log(enum smq_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

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
