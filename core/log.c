/* log.c - leveled, line-atomic logging to stderr, stdout, a file, syslog.
 *
 * Each line is formatted into a stack buffer (timestamp, level, text) and
 * written with one write(2) per destination: POSIX makes writes of a pipe
 * buffer or less atomic on pipes, and terminals/files see whole lines in
 * practice. Lines longer than the buffer are truncated with "...", never
 * split.
 *
 * The type mask is an atomic read on every call (the cheap "is it on?"
 * test). The rest of the settings (destinations, timestamp format) change
 * only at start and on reload: a mutex guards them, and each line copies
 * what it needs under it, then formats and writes outside it. The log
 * file's descriptor number never changes once opened: a reopen dup2()s the
 * new file onto it, so a line being written meanwhile lands in the old or
 * the new file, never in an unrelated descriptor.
 */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define FILE_MAX 4096
#define FORMAT_MAX 128

static atomic_uint log_types = (1u << SMQ_LOG_ERROR) | (1u << SMQ_LOG_WARNING) |
			       (1u << SMQ_LOG_NOTICE);
static atomic_int log_fd = 2;

/* Guarded by lock: written by smq_log_setup()/smq_log_reopen(), copied by
 * each line. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned dest = SMQ_LOG_TO_STDERR;
static int file_fd = -1;		/* once opened, the number never changes */
static char file_path[FILE_MAX];
static bool stamp = true;
static char stamp_format[FORMAT_MAX];	/* "": ISO 8601 UTC */

static const char *const level_names[] = { "error", "warning", "notice", "info", "debug",
					   "subscribe", "unsubscribe" };
static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG,
				   LOG_NOTICE, LOG_NOTICE };

static unsigned mask_upto(enum smq_log_level level)
{
	unsigned m = (2u << level) - 1u;

	if (level >= SMQ_LOG_DEBUG)
		m = SMQ_LOG_ALL_TYPES;
	return m;
}

void smq_log_set_level(enum smq_log_level level)
{
	smq_log_set_types(mask_upto(level > SMQ_LOG_DEBUG ? SMQ_LOG_DEBUG : level));
}

enum smq_log_level smq_log_get_level(void)
{
	unsigned m = smq_log_get_types();

	for (int l = SMQ_LOG_DEBUG; l > SMQ_LOG_ERROR; l--)
		if (m & (1u << l))
			return (enum smq_log_level)l;
	return SMQ_LOG_ERROR;
}

void smq_log_set_types(unsigned mask)
{
	atomic_store_explicit(&log_types, mask & SMQ_LOG_ALL_TYPES, memory_order_relaxed);
}

unsigned smq_log_get_types(void)
{
	return atomic_load_explicit(&log_types, memory_order_relaxed);
}

int smq_log_parse_level(const char *s, enum smq_log_level *out)
{
	for (unsigned i = 0; i <= SMQ_LOG_DEBUG; i++) {
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
	return (unsigned)level < 7 && (smq_log_get_types() & (1u << level));
}

/* Open @path for appending and put it at file_fd. Caller holds lock. */
static int open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0)
		return -errno;
	if (file_fd < 0) {
		file_fd = fd;
		return 0;
	}
	if (fd != file_fd && dup2(fd, file_fd) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	close(fd);
	return 0;
}

int smq_log_setup(const struct smq_log_opts *o, char *err, size_t errlen)
{
	const char *fmt = o->timestamp_format ? o->timestamp_format : "";
	int ret = 0;

	if ((o->dest & SMQ_LOG_TO_FILE) && (!o->file || strlen(o->file) >= FILE_MAX))
		ret = -EINVAL;
	else if (strlen(fmt) >= FORMAT_MAX)
		ret = -EINVAL;
	if (ret) {
		if (err && errlen)
			snprintf(err, errlen, "log settings: path or timestamp format too long");
		return ret;
	}
	pthread_mutex_lock(&lock);
	if (o->dest & SMQ_LOG_TO_FILE) {
		ret = open_file(o->file);
		if (ret) {
			if (err && errlen)
				snprintf(err, errlen, "%s: %s", o->file, strerror(-ret));
			goto out_unlock;
		}
		strcpy(file_path, o->file);
	}
	if (o->dest & SMQ_LOG_TO_SYSLOG)
		openlog("shardmq", LOG_PID | LOG_NDELAY,
			o->facility >= 0 && o->facility <= 7 ? (LOG_LOCAL0 + (o->facility << 3))
							     : LOG_DAEMON);
	dest = o->dest;
	stamp = o->timestamp;
	strcpy(stamp_format, fmt);
out_unlock:
	pthread_mutex_unlock(&lock);
	return ret;
}

int smq_log_reopen(void)
{
	int ret = 0;

	pthread_mutex_lock(&lock);
	if ((dest & SMQ_LOG_TO_FILE) && file_path[0])
		ret = open_file(file_path);
	pthread_mutex_unlock(&lock);
	return ret;
}

/* The line's prefix: time and type. Returns its length. */
static int prefix(char *line, size_t cap, enum smq_log_level level, bool ts, const char *fmt)
{
	struct timespec now;
	struct tm tm;
	size_t n = 0;

	if (ts) {
		clock_gettime(CLOCK_REALTIME, &now);
		if (fmt[0]) {
			localtime_r(&now.tv_sec, &tm);
			n = strftime(line, cap - 64, fmt, &tm);
			line[n++] = ' ';
		} else {
			gmtime_r(&now.tv_sec, &tm);
			n = (size_t)snprintf(line, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
					     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
					     tm.tm_hour, tm.tm_min, tm.tm_sec,
					     now.tv_nsec / 1000000);
		}
	}
	return (int)n + snprintf(line + n, cap - n, "%s: ", level_names[level]);
}

void smq_log(enum smq_log_level level, const char *fmt, ...)
{
	char line[1024], tsf[FORMAT_MAX];
	unsigned to;
	int n, m, body, ffd;
	bool ts;
	va_list ap;

	if (!smq_log_enabled(level))
		return;
	pthread_mutex_lock(&lock);
	to = dest;
	ffd = file_fd;
	ts = stamp;
	memcpy(tsf, stamp_format, sizeof(tsf));
	pthread_mutex_unlock(&lock);
	if (!to)
		return;
	n = prefix(line, sizeof(line), level, ts, tsf);
	body = n;
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
	if ((to & SMQ_LOG_TO_STDERR) &&
	    write(atomic_load_explicit(&log_fd, memory_order_relaxed), line, (size_t)n) < 0)
		(void)0;
	if ((to & SMQ_LOG_TO_STDOUT) && write(1, line, (size_t)n) < 0)
		(void)0;
	if ((to & SMQ_LOG_TO_FILE) && ffd >= 0 && write(ffd, line, (size_t)n) < 0)
		(void)0;
	if (to & SMQ_LOG_TO_SYSLOG) {
		line[n - 1] = '\0';
		syslog(syslog_prio[level], "%s", line + body);
	}
}

bool smq_log_due(uint64_t *last_ms, uint64_t now_ms, uint64_t period_ms)
{
	if (*last_ms && now_ms - *last_ms < period_ms)
		return false;
	*last_ms = now_ms ? now_ms : 1;
	return true;
}

void smq_errbuf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
