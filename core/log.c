/* log.c - leveled, line-atomic logging.
 *
 * Each line is formatted into a stack buffer (timestamp, level, text) and
 * written with one write(2): POSIX makes writes of a pipe buffer or less
 * atomic on pipes, and terminals/files see whole lines in practice. Lines
 * longer than the buffer are truncated with "...", never split.
 */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = SMQ_LOG_NOTICE;
static atomic_int log_fd = 2;

static const char *const level_names[] = { "error", "warning", "notice", "info", "debug" };

void smq_log_set_level(enum smq_log_level level)
{
	atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

enum smq_log_level smq_log_get_level(void)
{
	return (enum smq_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

int smq_log_parse_level(const char *s, enum smq_log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (!strcasecmp(s, level_names[i])) {
			*out = (enum smq_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void smq_log_set_fd(int fd)
{
	atomic_store_explicit(&log_fd, fd, memory_order_relaxed);
}

bool smq_log_enabled(enum smq_log_level level)
{
	return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void smq_log(enum smq_log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, m;

	if (!smq_log_enabled(level))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	if ((size_t)(n + m) >= sizeof(line) - 1) {
		n = (int)sizeof(line) - 5;
		memcpy(line + n, "...", 3);
		n += 3;
	} else {
		n += m;
	}
	line[n++] = '\n';
	/* A failed log write has nowhere to be reported; drop it. */
	if (write(atomic_load_explicit(&log_fd, memory_order_relaxed), line, (size_t)n) < 0)
		return;
}

bool smq_log_due(uint64_t *last_ms, uint64_t now_ms, uint64_t period_ms)
{
	if (*last_ms && now_ms - *last_ms < period_ms)
		return false;
	*last_ms = now_ms ? now_ms : 1;
	return true;
}
