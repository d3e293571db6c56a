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
	K_LISTENER,	/* a new listener: port [address] */
	K_PROTO,	/* int: enum smq_listener_proto */
	K_DOMAIN,	/* int: enum smq_socket_domain */
	K_IFNAME,	/* char[16] */
	K_TLSVER,	/* char[16]: tlsv1.2 | tlsv1.3 */
	K_CIPHERS,	/* char[SMQ_CONFIG_CIPHERS_MAX] */
	K_FALSE,	/* must be false (a mosquitto key with one supported value) */
};

/* Where a key's field lives. */
enum scope {
	S_GLOBAL,	/* struct smq_config */
	S_LISTENER,	/* struct smq_listener_cfg: the current listener block, or
			 * the default listener before any listener line */
};

struct key {
	const char *name;
	enum kind kind;
	size_t off;
	int64_t min, max;
	bool zero_ok;	/* 0 is accepted as a special value below min */
	enum scope scope;
	bool tls;	/* a TLS setting (remembered for error messages) */
};

#define F(field) offsetof(struct smq_config, field)
#define LF(field) offsetof(struct smq_listener_cfg, field)

static const struct key keys[] = {
	{ "port", K_INT, F(port), 0, 65535, false, S_GLOBAL, false },
	{ "bind_address", K_ADDR, F(bind_address), 0, 0, false, S_GLOBAL, false },
	{ "listener", K_LISTENER, 0, 0, 65535, false, S_GLOBAL, false },
	{ "protocol", K_PROTO, LF(protocol), 0, 0, false, S_LISTENER, false },
	{ "socket_domain", K_DOMAIN, LF(socket_domain), 0, 0, false, S_LISTENER, false },
	{ "bind_interface", K_IFNAME, LF(bind_interface), 0, 0, false, S_LISTENER, false },
	{ "certfile", K_PATH, LF(certfile), 0, 0, false, S_LISTENER, true },
	{ "keyfile", K_PATH, LF(keyfile), 0, 0, false, S_LISTENER, true },
	{ "cafile", K_PATH, LF(cafile), 0, 0, false, S_LISTENER, true },
	{ "capath", K_PATH, LF(capath), 0, 0, false, S_LISTENER, true },
	{ "require_certificate", K_BOOL, LF(require_certificate), 0, 0, false, S_LISTENER, true },
	{ "use_identity_as_username", K_BOOL, LF(use_identity_as_username), 0, 0, false,
	  S_LISTENER, true },
	{ "tls_version", K_TLSVER, LF(tls_version), 0, 0, false, S_LISTENER, true },
	{ "ciphers", K_CIPHERS, LF(ciphers), 0, 0, false, S_LISTENER, true },
	{ "ciphers_tls1.3", K_CIPHERS, LF(ciphers_tls13), 0, 0, false, S_LISTENER, true },
	{ "acl_file", K_PATH, F(acl_file), 0, 0, false, S_GLOBAL, false },
	{ "per_listener_settings", K_FALSE, 0, 0, 0, false, S_GLOBAL, false },
	{ "shards", K_INT, F(shards), 0, SMQ_CONFIG_MAX_SHARDS, false, S_GLOBAL, false },
	{ "pin_cpus", K_CPUS, 0, 0, 0, false, S_GLOBAL, false },
	{ "max_connections", K_INT, F(max_connections), -1, INT32_MAX, false, S_GLOBAL, false },
	{ "max_packet_size", K_SIZE, F(max_packet_size), 2, SMQ_CONFIG_PROTOCOL_MAX_PACKET, true, S_GLOBAL, false },
	{ "max_inflight_messages", K_INT, F(max_inflight_messages), 1, 65535, false, S_GLOBAL, false },
	{ "max_queued_messages", K_INT, F(max_queued_messages), 0, INT32_MAX, false, S_GLOBAL, false },
	{ "max_queued_bytes", K_SIZE, F(max_queued_bytes), 0, SIZE_MAX_BYTES, false, S_GLOBAL, false },
	{ "max_keepalive", K_INT, F(max_keepalive), 0, 65535, false, S_GLOBAL, false },
	{ "allow_anonymous", K_BOOL, F(allow_anonymous), 0, 0, false, S_GLOBAL, false },
	{ "allow_zero_length_clientid", K_BOOL, F(allow_zero_length_clientid), 0, 0, false, S_GLOBAL, false },
	{ "queue_qos0_messages", K_BOOL, F(queue_qos0_messages), 0, 0, false, S_GLOBAL, false },
	{ "retain_available", K_BOOL, F(retain_available), 0, 0, false, S_GLOBAL, false },
	{ "max_qos", K_INT, F(max_qos), 0, 2, false, S_GLOBAL, false },
	{ "client_max_write_buffer", K_SIZE, F(client_max_write_buffer), 1, SIZE_MAX_BYTES, false, S_GLOBAL, false },
	{ "persistent_client_expiration", K_SECONDS, F(persistent_client_expiration), 0,
	  UINT32_MAX, false, S_GLOBAL, false },
	{ "log_level", K_LOGLEVEL, F(log_level), 0, 0, false, S_GLOBAL, false },
	{ "password_file", K_PATH, F(password_file), 0, 0, false, S_GLOBAL, false },
	{ "max_retained_messages", K_INT, F(max_retained_messages), 0, INT32_MAX, false, S_GLOBAL, false },
};

static void listener_defaults(struct smq_listener_cfg *l, int port)
{
	memset(l, 0, sizeof(*l));
	l->port = port;
	l->protocol = SMQ_PROTO_MQTT;
	l->socket_domain = SMQ_DOMAIN_ANY;
	l->max_connections = -1;
}

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
	listener_defaults(&c->deflt, c->port);
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

/* "PORT [ADDRESS]": mosquitto's listener line: a new listener block. */
static int set_listener(const struct key *k, struct smq_config *c, const char *v, char *err,
			size_t errlen)
{
	char buf[SMQ_CONFIG_ADDR_MAX + 16], *port, *addr;
	struct smq_listener_cfg *l;
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
	if (c->nlisteners == SMQ_CONFIG_MAX_LISTENERS) {
		msg(err, errlen, "%s: more than %d listeners", k->name, SMQ_CONFIG_MAX_LISTENERS);
		return -EINVAL;
	}
	l = &c->listeners[c->nlisteners++];
	listener_defaults(l, (int)p);
	strcpy(l->addr, addr);	/* fits: shorter than buf */
	return 0;
out_bad:
	msg(err, errlen, "%s: expected PORT (0..65535) and an optional ADDRESS, got '%s'",
	    k->name, v);
	return -EINVAL;
}

/* One word of @words ("a|b|c") -> its index into *(int *)field. */
static int set_word(const struct key *k, void *field, const char *v, const char *const *words,
		    int n, char *err, size_t errlen)
{
	for (int i = 0; i < n; i++) {
		if (!strcmp(v, words[i])) {
			*(int *)field = i;
			return 0;
		}
	}
	msg(err, errlen, "%s: expected %s%s%s%s%s, got '%s'", k->name, words[0], n > 1 ? " or " : "",
	    n > 1 ? words[1] : "", n > 2 ? " or " : "", n > 2 ? words[2] : "", v);
	return -EINVAL;
}

static int set_proto(const struct key *k, void *field, const char *v, char *err, size_t errlen)
{
	static const char *const words[] = { "mqtt", "websockets" };

	return set_word(k, field, v, words, 2, err, errlen);
}

static int set_domain(const struct key *k, void *field, const char *v, char *err, size_t errlen)
{
	static const char *const words[] = { "ipv4", "ipv6" };
	int d;

	if (set_word(k, &d, v, words, 2, err, errlen))
		return -EINVAL;
	*(int *)field = d == 0 ? SMQ_DOMAIN_IPV4 : SMQ_DOMAIN_IPV6;
	return 0;
}

static int set_tlsver(const struct key *k, void *field, const char *v, char *err, size_t errlen)
{
	static const char *const words[] = { "tlsv1.2", "tlsv1.3" };
	int i;

	if (set_word(k, &i, v, words, 2, err, errlen))
		return -EINVAL;
	strcpy(field, words[i]);
	return 0;
}

static int set_false(const struct key *k, const char *v, char *err, size_t errlen)
{
	bool b;

	if (set_bool(k, &b, v, err, errlen))
		return -EINVAL;
	if (b) {
		msg(err, errlen, "%s: only false is supported", k->name);
		return -EINVAL;
	}
	return 0;
}

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

/* The struct a key's field lives in: the config, the listener block being
 * read, or the default listener. */
static void *key_base(struct smq_config *c, const struct key *k)
{
	if (k->scope == S_GLOBAL)
		return c;
	if (c->nlisteners)
		return &c->listeners[c->nlisteners - 1];
	return &c->deflt;
}

/* @v is trimmed and non-empty. */
static int apply(struct smq_config *c, const struct key *k, const char *v, char *err,
		 size_t errlen)
{
	void *field = (char *)key_base(c, k) + k->off;

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
	case K_PROTO:
		return set_proto(k, field, v, err, errlen);
	case K_DOMAIN:
		return set_domain(k, field, v, err, errlen);
	case K_IFNAME:
		return set_string(k, field, 16, v, err, errlen);
	case K_TLSVER:
		return set_tlsver(k, field, v, err, errlen);
	case K_CIPHERS:
		return set_string(k, field, SMQ_CONFIG_CIPHERS_MAX, v, err, errlen);
	case K_FALSE:
		return set_false(k, v, err, errlen);
	}
	return -EINVAL;
}

/* Apply @k and remember what the listener rules need to know: which keys
 * were given at all, and the first TLS key of each listener. */
static int apply_key(struct smq_config *c, const struct key *k, const char *v, char *err,
		     size_t errlen)
{
	struct smq_listener_cfg *l = key_base(c, k);
	int ret;

	/* max_connections outside a listener block is the broker-wide limit. */
	if (!strcmp(k->name, "max_connections"))
		return set_int(k, c->nlisteners ? &c->listeners[c->nlisteners - 1].max_connections
						: &c->max_connections, v, err, errlen);
	ret = apply(c, k, v, err, errlen);
	if (ret)
		return ret;
	if (!strcmp(k->name, "port")) {
		c->port_set = true;
		c->deflt.port = c->port;
	} else if (!strcmp(k->name, "bind_address")) {
		c->bind_set = true;
		strcpy(c->deflt.addr, c->bind_address);
	} else if (!strcmp(k->name, "allow_anonymous")) {
		c->anonymous_set = true;
	}
	if (k->tls && !l->tls_key)
		l->tls_key = k->name;
	return 0;
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
	return apply_key(c, k, v, err, errlen);
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

bool smq_config_listener_tls(const struct smq_listener_cfg *l)
{
	return l->certfile[0] || l->keyfile[0];
}

bool smq_config_anonymous(const struct smq_config *c)
{
	if (c->anonymous_set)
		return c->allow_anonymous;
	return c->nlisteners == 0;
}

static int check_listener(const struct smq_listener_cfg *l, char *err, size_t errlen)
{
	if (l->protocol == SMQ_PROTO_WEBSOCKETS) {
		msg(err, errlen, "listener %d: protocol websockets is not supported yet", l->port);
		return -EINVAL;
	}
	if (l->tls_key && (!l->certfile[0] || !l->keyfile[0])) {
		msg(err, errlen, "listener %d: %s is set but TLS needs both certfile and keyfile",
		    l->port, l->tls_key);
		return -EINVAL;
	}
	if (l->require_certificate && !l->cafile[0] && !l->capath[0]) {
		msg(err, errlen, "listener %d: require_certificate needs cafile or capath", l->port);
		return -EINVAL;
	}
	if (l->use_identity_as_username && !l->require_certificate) {
		msg(err, errlen, "listener %d: use_identity_as_username needs require_certificate "
		    "true", l->port);
		return -EINVAL;
	}
	return 0;
}

static int add_listener(struct smq_listener_cfg *out, int max, int *n,
			const struct smq_listener_cfg *l, const char *addr, char *err, size_t errlen)
{
	int ret = check_listener(l, err, errlen);

	if (ret)
		return ret;
	if (*n == max) {
		msg(err, errlen, "more than %d listeners", max);
		return -EINVAL;
	}
	out[*n] = *l;
	if (addr)
		strcpy(out[*n].addr, addr);
	(*n)++;
	return 0;
}

int smq_config_listeners(const struct smq_config *c, struct smq_listener_cfg *out, int max,
			 char *err, size_t errlen)
{
	const struct smq_listener_cfg *d = &c->deflt;
	int n = 0, ret = 0;

	if (c->nlisteners && !c->port_set) {
		if (d->tls_key || d->protocol != SMQ_PROTO_MQTT || d->socket_domain ||
		    d->bind_interface[0] || c->bind_set) {
			msg(err, errlen, "%s is given before any listener line, so it applies to the "
			    "default listener, which is not opened when listener lines exist and "
			    "port is not set: move it below a listener line",
			    d->tls_key ? d->tls_key : c->bind_set ? "bind_address" :
			    d->protocol ? "protocol" : d->socket_domain ? "socket_domain" :
			    "bind_interface");
			return -EINVAL;
		}
	} else if (c->bind_set) {
		ret = add_listener(out, max, &n, d, NULL, err, errlen);
	} else {
		/* Loopback only, as mosquitto 2 does without a listener. */
		if (d->socket_domain != SMQ_DOMAIN_IPV6)
			ret = add_listener(out, max, &n, d, "127.0.0.1", err, errlen);
		if (!ret && d->socket_domain != SMQ_DOMAIN_IPV4)
			ret = add_listener(out, max, &n, d, "::1", err, errlen);
	}
	for (int i = 0; !ret && i < c->nlisteners; i++)
		ret = add_listener(out, max, &n, &c->listeners[i], NULL, err, errlen);
	return ret ? ret : n;
}
