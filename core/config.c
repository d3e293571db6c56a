/* config.c - the broker config file: defaults, "key value" lines, overrides.
 *
 * Every key is one row of a table (name, kind, field offset, range), so a new
 * setting is one line here plus its field in config.h. Each kind has one
 * parser that turns the value text into a number or string and checks it
 * against the row's range before anything is stored.
 *
 * Invariant: a key/value pair is applied completely or not at all; a
 * struct smq_config only ever holds values that passed their checks.
 *
 * Left to others: what the settings mean (the broker and shards read the
 * struct), and the command line itself (cmd/ calls smq_config_set()).
 */
#include "core/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE_MAX_BYTES (1ull << 40)	/* 1T: bigger is a typo */
#define MSG_LEN 512

enum kind {
	K_BOOL,		/* bool */
	K_INT,		/* int, min..max */
	K_SIZE,		/* uint64_t bytes, min..max, suffix k/m/g */
	K_SECONDS,	/* uint64_t seconds, min..max, suffix h/d/w */
	K_ADDR,		/* char[SMQ_CONFIG_ADDR_MAX] */
	K_PATH,		/* char[SMQ_CONFIG_PATH_MAX] */
	K_LOGLEVEL,	/* enum smq_log_level */
	K_CPUS,		/* pin_cpus + ncpus + cpus[] */
	K_LISTENER,	/* port (+ bind_address) */
};

struct key {
	const char *name;
	enum kind kind;
	size_t off;
	int64_t min, max;
	bool zero_ok;	/* 0 is accepted as a special value below min */
};

#define F(field) offsetof(struct smq_config, field)

static const struct key keys[] = {
	{ "port", K_INT, F(port), 0, 65535, false },
	{ "bind_address", K_ADDR, F(bind_address), 0, 0, false },
	{ "listener", K_LISTENER, 0, 0, 65535, false },
	{ "shards", K_INT, F(shards), 0, SMQ_CONFIG_MAX_SHARDS, false },
	{ "pin_cpus", K_CPUS, 0, 0, 0, false },
	{ "max_connections", K_INT, F(max_connections), -1, INT32_MAX, false },
	{ "max_packet_size", K_SIZE, F(max_packet_size), 2, SMQ_CONFIG_PROTOCOL_MAX_PACKET, true },
	{ "max_inflight_messages", K_INT, F(max_inflight_messages), 1, 65535, false },
	{ "max_queued_messages", K_INT, F(max_queued_messages), 0, INT32_MAX, false },
	{ "max_queued_bytes", K_SIZE, F(max_queued_bytes), 0, SIZE_MAX_BYTES, false },
	{ "max_keepalive", K_INT, F(max_keepalive), 0, 65535, false },
	{ "allow_anonymous", K_BOOL, F(allow_anonymous), 0, 0, false },
	{ "allow_zero_length_clientid", K_BOOL, F(allow_zero_length_clientid), 0, 0, false },
	{ "queue_qos0_messages", K_BOOL, F(queue_qos0_messages), 0, 0, false },
	{ "retain_available", K_BOOL, F(retain_available), 0, 0, false },
	{ "max_qos", K_INT, F(max_qos), 0, 2, false },
	{ "client_max_write_buffer", K_SIZE, F(client_max_write_buffer), 1, SIZE_MAX_BYTES, false },
	{ "persistent_client_expiration", K_SECONDS, F(persistent_client_expiration), 0,
	  UINT32_MAX, false },
	{ "log_level", K_LOGLEVEL, F(log_level), 0, 0, false },
	{ "password_file", K_PATH, F(password_file), 0, 0, false },
	{ "max_retained_messages", K_INT, F(max_retained_messages), 0, INT32_MAX, false },
};

void smq_config_defaults(struct smq_config *c)
{
	memset(c, 0, sizeof(*c));
	c->port = 1883;
	strcpy(c->bind_address, "127.0.0.1");
	c->shards = 0;
	c->pin_cpus = false;
	c->ncpus = 0;
	c->max_connections = 100000;
	c->max_packet_size = 1048576;
	c->max_inflight_messages = 20;
	c->max_queued_messages = 1000;
	c->max_queued_bytes = 67108864;
	c->max_keepalive = 65535;
	c->allow_anonymous = true;
	c->allow_zero_length_clientid = true;
	c->queue_qos0_messages = false;
	c->retain_available = true;
	c->max_qos = 2;
	c->client_max_write_buffer = 1048576;
	c->persistent_client_expiration = 0;
	c->log_level = SMQ_LOG_NOTICE;
	c->password_file[0] = '\0';
	c->max_retained_messages = 100000;
}

void smq_config_fini(struct smq_config *c)
{
	(void)c;
}

static void msg(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void msg(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

/* Trim @s in place; returns the first non-blank character. */
static char *trim(char *s)
{
	size_t n;

	while (is_blank(*s))
		s++;
	n = strlen(s);
	while (n && is_blank(s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* A plain decimal integer, optionally negative, all of @s. */
static bool parse_i64(const char *s, int64_t *out)
{
	const char *p = *s == '-' ? s + 1 : s;
	char *end;
	long long v;

	if (*p < '0' || *p > '9')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* Digits then at most one suffix from @suffixes, whose multipliers are in
 * @mult. Overflow or anything else is a failure. */
static bool parse_scaled(const char *s, const char *suffixes, const uint64_t *mult,
			 uint64_t *out)
{
	char *end;
	const char *at;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (*end) {
		at = end[1] ? NULL : strchr(suffixes, *end);
		if (!at)
			return false;
		if (v > UINT64_MAX / mult[at - suffixes])
			return false;
		v *= mult[at - suffixes];
	}
	*out = v;
	return true;
}

static bool in_range(const struct key *k, int64_t v)
{
	return (v >= k->min && v <= k->max) || (k->zero_ok && v == 0);
}

static int set_int(const struct key *k, void *field, const char *v, char *err, size_t errlen)
{
	int64_t n;

	if (!parse_i64(v, &n) || !in_range(k, n)) {
		msg(err, errlen, "%s: expected a number %" PRId64 "..%" PRId64 ", got '%s'",
		    k->name, k->min, k->max, v);
		return -EINVAL;
	}
	*(int *)field = (int)n;
	return 0;
}

static int set_size(const struct key *k, void *field, const char *v, char *err, size_t errlen)
{
	static const uint64_t mult[] = { 1ull << 10, 1ull << 10, 1ull << 20, 1ull << 20,
					 1ull << 30, 1ull << 30 };
	uint64_t n;

	if (!parse_scaled(v, "kKmMgG", mult, &n) || n > INT64_MAX || !in_range(k, (int64_t)n)) {
		msg(err, errlen, "%s: expected a size %s%" PRId64 "..%" PRId64
		    " bytes (suffix k, m or g allowed), got '%s'", k->name,
		    k->zero_ok ? "0 or " : "", k->min, k->max, v);
		return -EINVAL;
	}
	*(uint64_t *)field = n;
	return 0;
}

static int set_seconds(const struct key *k, void *field, const char *v, char *err,
		       size_t errlen)
{
	static const uint64_t mult[] = { 3600, 86400, 604800 };
	uint64_t n;

	if (!parse_scaled(v, "hdw", mult, &n) || n > INT64_MAX || !in_range(k, (int64_t)n)) {
		msg(err, errlen, "%s: expected seconds %" PRId64 "..%" PRId64
		    " (suffix h, d or w allowed), got '%s'", k->name, k->min, k->max, v);
		return -EINVAL;
	}
	*(uint64_t *)field = n;
	return 0;
}

static int set_bool(const struct key *k, void *field, const char *v, char *err, size_t errlen)
{
	if (!strcmp(v, "true")) {
		*(bool *)field = true;
	} else if (!strcmp(v, "false")) {
		*(bool *)field = false;
	} else {
		msg(err, errlen, "%s: expected true or false, got '%s'", k->name, v);
		return -EINVAL;
	}
	return 0;
}

/* A string without blanks inside (an address) or any string (a path). */
static int set_string(const struct key *k, char *field, size_t cap, const char *v, char *err,
		      size_t errlen)
{
	size_t n = strlen(v);

	if (n >= cap) {
		msg(err, errlen, "%s: longer than %zu characters", k->name, cap - 1);
		return -EINVAL;
	}
	if (k->kind == K_ADDR && strpbrk(v, " \t")) {
		msg(err, errlen, "%s: expected one address, got '%s'", k->name, v);
		return -EINVAL;
	}
	memcpy(field, v, n + 1);
	return 0;
}

static int set_loglevel(const struct key *k, void *field, const char *v, char *err,
			size_t errlen)
{
	enum smq_log_level lvl;

	if (smq_log_parse_level(v, &lvl)) {
		msg(err, errlen, "%s: expected error, warning, notice, info or debug, got '%s'",
		    k->name, v);
		return -EINVAL;
	}
	*(enum smq_log_level *)field = lvl;
	return 0;
}

/* One item of a CPU list, "N" or "N-M", appended to @cpus. */
static bool parse_cpu_item(char *item, int *cpus, int *n)
{
	char *dash = strchr(item, '-');
	int64_t lo, hi;

	if (dash)
		*dash = '\0';
	if (!parse_i64(trim(item), &lo))
		return false;
	hi = lo;
	if (dash && !parse_i64(trim(dash + 1), &hi))
		return false;
	if (lo < 0 || hi > SMQ_CONFIG_MAX_CPU_ID || lo > hi)
		return false;
	if (hi - lo + 1 > SMQ_CONFIG_MAX_CPUS - *n)
		return false;
	for (int64_t c = lo; c <= hi; c++)
		cpus[(*n)++] = (int)c;
	return true;
}

/* "true", "false" or a list like "0,2,4-7". Parsed into locals first, so
 * that a bad list leaves @c as it was. */
static int set_cpus(const struct key *k, struct smq_config *c, const char *v, char *err,
		    size_t errlen)
{
	int cpus[SMQ_CONFIG_MAX_CPUS];
	char buf[1024], *item, *save;
	int n = 0;

	if (!strcmp(v, "true") || !strcmp(v, "false")) {
		c->pin_cpus = v[0] == 't';
		c->ncpus = 0;
		return 0;
	}
	if (strlen(v) >= sizeof(buf) || !*v || v[0] == ',' || v[strlen(v) - 1] == ',' ||
	    strstr(v, ",,"))
		goto out_bad;
	strcpy(buf, v);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save))
		if (!parse_cpu_item(item, cpus, &n))
			goto out_bad;
	c->pin_cpus = true;
	c->ncpus = n;
	memcpy(c->cpus, cpus, (size_t)n * sizeof(cpus[0]));
	return 0;
out_bad:
	msg(err, errlen, "%s: expected true, false or a list of CPU ids 0..%d like '0,2,4-7' "
	    "(at most %d CPUs), got '%s'", k->name, SMQ_CONFIG_MAX_CPU_ID, SMQ_CONFIG_MAX_CPUS, v);
	return -EINVAL;
}

/* "PORT [ADDRESS]": mosquitto's listener line, as port + bind_address. */
static int set_listener(const struct key *k, struct smq_config *c, const char *v, char *err,
			size_t errlen)
{
	char buf[SMQ_CONFIG_ADDR_MAX + 16], *port, *addr;
	int64_t p;

	if (strlen(v) >= sizeof(buf))
		goto out_bad;
	strcpy(buf, v);
	port = buf;
	addr = port + strcspn(port, " \t");
	if (*addr) {
		*addr++ = '\0';
		addr = trim(addr);
		if (strpbrk(addr, " \t"))
			goto out_bad;
	}
	if (!parse_i64(port, &p) || !in_range(k, p))
		goto out_bad;
	c->port = (int)p;
	if (*addr)
		strcpy(c->bind_address, addr);	/* fits: shorter than buf */
	return 0;
out_bad:
	msg(err, errlen, "%s: expected PORT (0..65535) and an optional ADDRESS, got '%s'",
	    k->name, v);
	return -EINVAL;
}

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

/* @v is trimmed and non-empty. */
static int apply(struct smq_config *c, const struct key *k, const char *v, char *err,
		 size_t errlen)
{
	void *field = (char *)c + k->off;

	switch (k->kind) {
	case K_BOOL:
		return set_bool(k, field, v, err, errlen);
	case K_INT:
		return set_int(k, field, v, err, errlen);
	case K_SIZE:
		return set_size(k, field, v, err, errlen);
	case K_SECONDS:
		return set_seconds(k, field, v, err, errlen);
	case K_ADDR:
		return set_string(k, field, SMQ_CONFIG_ADDR_MAX, v, err, errlen);
	case K_PATH:
		return set_string(k, field, SMQ_CONFIG_PATH_MAX, v, err, errlen);
	case K_LOGLEVEL:
		return set_loglevel(k, field, v, err, errlen);
	case K_CPUS:
		return set_cpus(k, c, v, err, errlen);
	case K_LISTENER:
		return set_listener(k, c, v, err, errlen);
	}
	return -EINVAL;
}

static int set_trimmed(struct smq_config *c, const char *key, const char *v, char *err,
		       size_t errlen)
{
	const struct key *k = find_key(key);

	if (!k) {
		msg(err, errlen, "unknown key '%s'", key);
		return -EINVAL;
	}
	if (!*v) {
		msg(err, errlen, "%s: missing value", key);
		return -EINVAL;
	}
	return apply(c, k, v, err, errlen);
}

int smq_config_set(struct smq_config *c, const char *key, const char *value, char *err,
		   size_t errlen)
{
	char *v = strdup(value ? value : "");
	int ret;

	if (!v) {
		msg(err, errlen, "%s: out of memory", key);
		return -ENOMEM;
	}
	ret = set_trimmed(c, key, trim(v), err, errlen);
	free(v);
	return ret;
}

/* One line of the file, modified in place. Comments and blank lines are
 * nothing to do. */
static int load_line(struct smq_config *c, char *line, char *err, size_t errlen)
{
	char *key = trim(line), *v;

	if (!*key || *key == '#')
		return 0;
	v = key;
	while (*v && !is_blank(*v))
		v++;
	if (*v)
		*v++ = '\0';
	return set_trimmed(c, key, trim(v), err, errlen);
}

/* Keys may repeat: the last one wins, like any later override. */
int smq_config_load(struct smq_config *c, const char *path, char *err, size_t errlen)
{
	char *line = NULL, what[MSG_LEN];
	size_t cap = 0;
	unsigned lineno = 0;
	int ret = 0;
	FILE *f;

	if (err && errlen)
		err[0] = '\0';
	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		msg(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	errno = 0;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		ret = load_line(c, line, what, sizeof(what));
		if (ret) {
			msg(err, errlen, "%s:%u: %s", path, lineno, what);
			goto out_close;
		}
		errno = 0;
	}
	if (ferror(f) || errno) {
		ret = errno ? -errno : -EIO;
		msg(err, errlen, "%s: %s", path, strerror(-ret));
	}
out_close:
	free(line);
	fclose(f);
	return ret;
}
