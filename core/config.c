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
 * mosquitto.conf: every key of mosquitto 2.0's broker has a row. Keys of
 * features shardmq lacks are rows too (K_REFUSE, K_FALSE, K_ZERO, or a
 * family such as "bridge_*"), each with a note saying why, so that a
 * setting is refused by name and never ignored. A file is read to its end
 * whatever fails: each bad line adds one "FILE:LINE: what" to the error
 * text, so a user fixes a whole file in one round. include_dir is handled
 * by the loader (it needs the file's context), not by a row's parser.
 *
 * Left to others: what the settings mean (the broker and shards read the
 * struct), and the command line itself (cmd/ calls smq_config_set()).
 */
#include "core/config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
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
	K_ZERO,		/* must be 0 (a mosquitto limit shardmq cannot enforce yet) */
	K_REFUSE,	/* a feature shardmq lacks: refused with the row's note */
	K_WARN,		/* obsolete in mosquitto 2: accepted with the note as a warning */
	K_STR,		/* char[max] */
	K_LOGDEST,	/* log_dest + log_file, repeatable */
	K_LOGTYPE,	/* log_types, repeatable */
	K_ALIAS,	/* max_topic_alias: int, one value for every listener */
	K_INCLUDE,	/* include_dir: read by the file loader */
	K_METRICS,	/* metrics_listener: port [address], once */
	K_SYNC,		/* persistence_sync: commit | periodic */
	K_AUTOSAVE,	/* autosave_interval: int seconds, remembered as given */
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
	const char *note;	/* K_FALSE, K_ZERO, K_REFUSE, K_WARN: why */
};

#define F(field) offsetof(struct smq_config, field)
#define LF(field) offsetof(struct smq_listener_cfg, field)

static const struct key keys[] = {
	{ "port", K_INT, F(port), 0, 65535, false, S_GLOBAL, false, NULL },
	{ "bind_address", K_ADDR, F(bind_address), 0, 0, false, S_GLOBAL, false, NULL },
	{ "listener", K_LISTENER, 0, 0, 65535, false, S_GLOBAL, false, NULL },
	{ "protocol", K_PROTO, LF(protocol), 0, 0, false, S_LISTENER, false, NULL },
	{ "socket_domain", K_DOMAIN, LF(socket_domain), 0, 0, false, S_LISTENER, false, NULL },
	{ "bind_interface", K_IFNAME, LF(bind_interface), 0, 0, false, S_LISTENER, false, NULL },
	{ "certfile", K_PATH, LF(certfile), 0, 0, false, S_LISTENER, true, NULL },
	{ "keyfile", K_PATH, LF(keyfile), 0, 0, false, S_LISTENER, true, NULL },
	{ "cafile", K_PATH, LF(cafile), 0, 0, false, S_LISTENER, true, NULL },
	{ "capath", K_PATH, LF(capath), 0, 0, false, S_LISTENER, true, NULL },
	{ "require_certificate", K_BOOL, LF(require_certificate), 0, 0, false, S_LISTENER, true, NULL },
	{ "use_identity_as_username", K_BOOL, LF(use_identity_as_username), 0, 0, false,
	  S_LISTENER, true, NULL },
	{ "tls_version", K_TLSVER, LF(tls_version), 0, 0, false, S_LISTENER, true, NULL },
	{ "ciphers", K_CIPHERS, LF(ciphers), 0, 0, false, S_LISTENER, true, NULL },
	{ "ciphers_tls1.3", K_CIPHERS, LF(ciphers_tls13), 0, 0, false, S_LISTENER, true, NULL },
	{ "acl_file", K_PATH, F(acl_file), 0, 0, false, S_GLOBAL, false, NULL },
	{ "per_listener_settings", K_FALSE, 0, 0, 0, false, S_GLOBAL, false, NULL },
	{ "shards", K_INT, F(shards), 0, SMQ_CONFIG_MAX_SHARDS, false, S_GLOBAL, false, NULL },
	{ "pin_cpus", K_CPUS, 0, 0, 0, false, S_GLOBAL, false, NULL },
	{ "max_connections", K_INT, F(max_connections), -1, INT32_MAX, false, S_GLOBAL, false, NULL },
	{ "max_packet_size", K_SIZE, F(max_packet_size), 2, SMQ_CONFIG_PROTOCOL_MAX_PACKET, true, S_GLOBAL, false, NULL },
	{ "max_inflight_messages", K_INT, F(max_inflight_messages), 1, 65535, true, S_GLOBAL, false, NULL },
	{ "max_queued_messages", K_INT, F(max_queued_messages), 0, INT32_MAX, false, S_GLOBAL, false, NULL },
	{ "max_queued_bytes", K_SIZE, F(max_queued_bytes), 0, SIZE_MAX_BYTES, false, S_GLOBAL, false, NULL },
	{ "max_keepalive", K_INT, F(max_keepalive), 0, 65535, false, S_GLOBAL, false, NULL },
	{ "allow_anonymous", K_BOOL, F(allow_anonymous), 0, 0, false, S_GLOBAL, false, NULL },
	{ "allow_zero_length_clientid", K_BOOL, F(allow_zero_length_clientid), 0, 0, false, S_GLOBAL, false, NULL },
	{ "queue_qos0_messages", K_BOOL, F(queue_qos0_messages), 0, 0, false, S_GLOBAL, false, NULL },
	{ "retain_available", K_BOOL, F(retain_available), 0, 0, false, S_GLOBAL, false, NULL },
	{ "max_qos", K_INT, F(max_qos), 0, 2, false, S_GLOBAL, false, NULL },
	{ "client_max_write_buffer", K_SIZE, F(client_max_write_buffer), 1, SIZE_MAX_BYTES, false, S_GLOBAL, false, NULL },
	{ "persistent_client_expiration", K_SECONDS, F(persistent_client_expiration), 0,
	  UINT32_MAX, false, S_GLOBAL, false, NULL },
	{ "log_level", K_LOGLEVEL, F(log_level), 0, 0, false, S_GLOBAL, false, NULL },
	{ "password_file", K_PATH, F(password_file), 0, 0, false, S_GLOBAL, false, NULL },
	{ "max_retained_messages", K_INT, F(max_retained_messages), 0, INT32_MAX, false, S_GLOBAL, false, NULL },
	/* mosquitto 2.0 keys, with mosquitto's meaning */
	{ "include_dir", K_INCLUDE, 0, 0, 0, false, S_GLOBAL, false, NULL },
	{ "message_size_limit", K_SIZE, F(message_size_limit), 0, 268435455, false, S_GLOBAL, false,
	  NULL },
	{ "upgrade_outgoing_qos", K_BOOL, F(upgrade_outgoing_qos), 0, 0, false, S_GLOBAL, false, NULL },
	{ "set_tcp_nodelay", K_BOOL, F(set_tcp_nodelay), 0, 0, false, S_GLOBAL, false, NULL },
	{ "allow_duplicate_messages", K_BOOL, F(allow_duplicate_messages), 0, 0, false, S_GLOBAL,
	  false, NULL },
	{ "connection_messages", K_BOOL, F(connection_messages), 0, 0, false, S_GLOBAL, false, NULL },
	{ "clientid_prefixes", K_STR, F(clientid_prefixes), 0, SMQ_CONFIG_ID_MAX, false, S_GLOBAL,
	  false, NULL },
	{ "auto_id_prefix", K_STR, F(auto_id_prefix), 0, SMQ_CONFIG_ID_MAX, false, S_GLOBAL, false,
	  NULL },
	{ "max_topic_alias", K_ALIAS, F(max_topic_alias), 0, 65535, false, S_GLOBAL, false, NULL },
	{ "log_dest", K_LOGDEST, 0, 0, 0, false, S_GLOBAL, false, NULL },
	{ "log_type", K_LOGTYPE, 0, 0, 0, false, S_GLOBAL, false, NULL },
	{ "log_facility", K_INT, F(log_facility), 0, 7, false, S_GLOBAL, false, NULL },
	{ "log_timestamp", K_BOOL, F(log_timestamp), 0, 0, false, S_GLOBAL, false, NULL },
	{ "log_timestamp_format", K_STR, F(log_timestamp_format), 0, 128, false, S_GLOBAL, false,
	  NULL },
	{ "pid_file", K_PATH, F(pid_file), 0, 0, false, S_GLOBAL, false, NULL },
	{ "user", K_STR, F(user), 0, 64, false, S_GLOBAL, false, NULL },
	{ "metrics_listener", K_METRICS, 0, 0, 65535, false, S_GLOBAL, false, NULL },
	{ "check_retain_source", K_FALSE, 0, 0, 0, false, S_GLOBAL, false,
	  "only false is supported: shardmq does not check a retained message's publisher again "
	  "when it is sent (mosquitto's default is true)" },
	{ "persistence", K_BOOL, F(persistence), 0, 0, false, S_GLOBAL, false, NULL },
	{ "persistence_location", K_PATH, F(persistence_location), 0, 0, false, S_GLOBAL, false,
	  NULL },
	{ "persistence_file", K_STR, F(persistence_file), 1, 255, false, S_GLOBAL, false, NULL },
	{ "persistence_sync", K_SYNC, F(persistence_sync), 0, 0, false, S_GLOBAL, false, NULL },
	{ "autosave_interval", K_AUTOSAVE, F(autosave_interval), 0, INT32_MAX, false, S_GLOBAL,
	  false, NULL },
	{ "autosave_on_changes", K_FALSE, 0, 0, 0, false, S_GLOBAL, false,
	  "only false is supported: shardmq writes every change as it happens (see "
	  "persistence_sync), so there is no change count to save after" },
	{ "memory_limit", K_ZERO, 0, 0, 0, false, S_GLOBAL, false,
	  "not supported: shardmq has no heap limit; only 0 (no limit) is accepted" },
	{ "sys_interval", K_INT, F(sys_interval), 0, INT32_MAX, false, S_GLOBAL, false, NULL },
	{ "max_inflight_bytes", K_ZERO, 0, 0, 0, false, S_GLOBAL, false,
	  "not supported yet: only 0 (no byte limit; max_inflight_messages applies) is accepted" },
	{ "retry_interval", K_WARN, 0, 0, 0, false, S_GLOBAL, false,
	  "obsolete: mosquitto 2 no longer has it and neither does shardmq; ignored" },
	{ "store_clean_interval", K_WARN, 0, 0, 0, false, S_GLOBAL, false,
	  "obsolete: mosquitto 2 no longer has it and neither does shardmq; ignored" },
	{ "mount_point", K_REFUSE, 0, 0, 0, false, S_LISTENER, false, "not supported yet" },
	{ "use_username_as_clientid", K_REFUSE, 0, 0, 0, false, S_LISTENER, false,
	  "not supported yet" },
	{ "use_subject_as_username", K_REFUSE, 0, 0, 0, false, S_LISTENER, true, "not supported yet" },
	{ "crlfile", K_REFUSE, 0, 0, 0, false, S_LISTENER, true, "not supported yet" },
	{ "dhparamfile", K_REFUSE, 0, 0, 0, false, S_LISTENER, true,
	  "not supported (shardmq's TLS uses ECDHE key exchange only)" },
	{ "tls_engine", K_REFUSE, 0, 0, 0, false, S_LISTENER, true, "not supported" },
	{ "tls_engine_kpass_sha1", K_REFUSE, 0, 0, 0, false, S_LISTENER, true, "not supported" },
	{ "tls_keyform", K_REFUSE, 0, 0, 0, false, S_LISTENER, true, "not supported" },
	{ "http_dir", K_REFUSE, 0, 0, 0, false, S_LISTENER, false,
	  "not supported: a websockets listener serves MQTT only, not files" },
	{ "websockets_headers_size", K_SIZE, F(websockets_headers_size), 256, 65536, true,
	  S_GLOBAL, false, NULL },
	{ "websockets_log_level", K_ZERO, 0, 0, 0, false, S_GLOBAL, false,
	  "only 0 is supported: it is a libwebsockets log mask, and shardmq's WebSocket layer is "
	  "not libwebsockets (failed WebSocket connections are logged as notices)" },
	{ "psk_file", K_REFUSE, 0, 0, 0, false, S_GLOBAL, false, "not supported: TLS-PSK is not built" },
	{ "psk_hint", K_REFUSE, 0, 0, 0, false, S_LISTENER, false,
	  "not supported: TLS-PSK is not built" },
	{ "auth_plugin", K_REFUSE, 0, 0, 0, false, S_GLOBAL, false, "plugins are not supported" },
	{ "plugin", K_REFUSE, 0, 0, 0, false, S_GLOBAL, false, "plugins are not supported" },
	{ "global_plugin", K_REFUSE, 0, 0, 0, false, S_GLOBAL, false, "plugins are not supported" },
	{ "auth_plugin_deny_special_chars", K_REFUSE, 0, 0, 0, false, S_GLOBAL, false,
	  "plugins are not supported" },
};

/* Whole families of mosquitto keys that shardmq lacks, by prefix or name. */
struct family {
	const char *name;
	bool prefix;
	const char *note;
};

static const char BRIDGE[] = "bridges are not supported yet";

static const struct family families[] = {
	{ "plugin_opt_", true, "plugins are not supported" },
	{ "auth_opt_", true, "plugins are not supported" },
	{ "websockets_", true, "unknown websockets key (there are websockets_headers_size and "
	  "websockets_log_level)" },
	{ "bridge_", true, BRIDGE },
	{ "connection", false, BRIDGE },
	{ "address", false, BRIDGE },
	{ "addresses", false, BRIDGE },
	{ "topic", false, BRIDGE },
	{ "cleansession", false, BRIDGE },
	{ "local_cleansession", false, BRIDGE },
	{ "keepalive_interval", false, BRIDGE },
	{ "idle_timeout", false, BRIDGE },
	{ "local_clientid", false, BRIDGE },
	{ "local_password", false, BRIDGE },
	{ "local_username", false, BRIDGE },
	{ "notifications", false, BRIDGE },
	{ "notifications_local_only", false, BRIDGE },
	{ "notification_topic", false, BRIDGE },
	{ "remote_clientid", false, BRIDGE },
	{ "remote_password", false, BRIDGE },
	{ "remote_username", false, BRIDGE },
	{ "restart_timeout", false, BRIDGE },
	{ "round_robin", false, BRIDGE },
	{ "start_type", false, BRIDGE },
	{ "threshold", false, BRIDGE },
	{ "try_private", false, BRIDGE },
	{ "clientid", false, BRIDGE },		/* old spellings of the bridge keys */
	{ "username", false, BRIDGE },
	{ "password", false, BRIDGE },
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
	c->sys_interval = 10;
	c->message_size_limit = 0;
	c->set_tcp_nodelay = true;
	c->allow_duplicate_messages = true;
	c->connection_messages = true;
	c->log_timestamp = true;
	strcpy(c->auto_id_prefix, "auto-");
	c->metrics_port = -1;
	strcpy(c->persistence_file, "shardmq.db");
	c->autosave_interval = 1800;
	c->max_topic_alias = 10;
	c->log_dest = SMQ_LOG_TO_STDERR;
	c->log_facility = -1;
	listener_defaults(&c->deflt, c->port);
}

void smq_config_fini(struct smq_config *c)
{
	(void)c;
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
		smq_errbuf(err, errlen, "%s: expected a number %s%" PRId64 "..%" PRId64 ", got '%s'",
		    k->name, k->zero_ok ? "0 or " : "", k->min, k->max, v);
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
		smq_errbuf(err, errlen, "%s: expected a size %s%" PRId64 "..%" PRId64
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
	/* mosquitto's units: a month is 30 days, a year 365 */
	static const uint64_t mult[] = { 1, 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400 };
	uint64_t n;

	if (!parse_scaled(v, "shdwmy", mult, &n) || n > INT64_MAX || !in_range(k, (int64_t)n)) {
		smq_errbuf(err, errlen, "%s: expected seconds %" PRId64 "..%" PRId64
		    " (suffix s, h, d, w, m = 30 days or y = 365 days allowed), got '%s'", k->name,
		    k->min, k->max, v);
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
		smq_errbuf(err, errlen, "%s: expected true or false, got '%s'", k->name, v);
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
		smq_errbuf(err, errlen, "%s: longer than %zu characters", k->name, cap - 1);
		return -EINVAL;
	}
	if (k->kind == K_ADDR && strpbrk(v, " \t")) {
		smq_errbuf(err, errlen, "%s: expected one address, got '%s'", k->name, v);
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
		smq_errbuf(err, errlen, "%s: expected error, warning, notice, info or debug, got '%s'",
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
	smq_errbuf(err, errlen, "%s: expected true, false or a list of CPU ids 0..%d like '0,2,4-7' "
	    "(at most %d CPUs), got '%s'", k->name, SMQ_CONFIG_MAX_CPU_ID, SMQ_CONFIG_MAX_CPUS, v);
	return -EINVAL;
}

/* "PORT [ADDRESS]": mosquitto's listener line: a new listener block. */
/* "PORT [ADDRESS]" into *port and @addr (SMQ_CONFIG_ADDR_MAX bytes; "" when
 * absent). 0, or -EINVAL with the message in @err. */
static int parse_port_addr(const struct key *k, const char *v, int64_t *port, char *addr,
			   char *err, size_t errlen)
{
	char buf[SMQ_CONFIG_ADDR_MAX + 16], *a;

	if (strlen(v) >= sizeof(buf))
		goto out_bad;
	strcpy(buf, v);
	a = buf + strcspn(buf, " \t");
	if (*a) {
		*a++ = '\0';
		a = trim(a);
		if (strpbrk(a, " \t") || strlen(a) >= SMQ_CONFIG_ADDR_MAX)
			goto out_bad;
	}
	if (!parse_i64(buf, port) || !in_range(k, *port))
		goto out_bad;
	strcpy(addr, a);
	return 0;
out_bad:
	smq_errbuf(err, errlen, "%s: expected PORT (0..65535) and an optional ADDRESS, got '%s'",
	    k->name, v);
	return -EINVAL;
}

static int set_listener(const struct key *k, struct smq_config *c, const char *v, char *err,
			size_t errlen)
{
	char addr[SMQ_CONFIG_ADDR_MAX];
	struct smq_listener_cfg *l;
	int64_t p;

	if (parse_port_addr(k, v, &p, addr, err, errlen))
		return -EINVAL;
	if (c->nlisteners == SMQ_CONFIG_MAX_LISTENERS) {
		smq_errbuf(err, errlen, "%s: more than %d listeners", k->name, SMQ_CONFIG_MAX_LISTENERS);
		return -EINVAL;
	}
	/* mosquitto: "listener 0 /path" is a Unix socket */
	if (addr[0] == '/' && p != 0) {
		smq_errbuf(err, errlen, "%s: a Unix socket listener is written 'listener 0 %s'",
		    k->name, addr);
		return -EINVAL;
	}
	if (addr[0] == '/' && strlen(addr) >= 108) {
		smq_errbuf(err, errlen, "%s: the Unix socket path %s is longer than 107 bytes", k->name,
		    addr);
		return -EINVAL;
	}
	l = &c->listeners[c->nlisteners++];
	listener_defaults(l, (int)p);
	strcpy(l->addr, addr);
	l->unix_sock = addr[0] == '/';
	return 0;
}

/* "PORT [ADDRESS]" for the metrics endpoint: loopback unless ADDRESS is
 * given (the numbers are for whoever can reach it). One line only: two
 * endpoints would be two copies of the same numbers. */
static int set_metrics(const struct key *k, struct smq_config *c, const char *v, char *err,
		       size_t errlen)
{
	char addr[SMQ_CONFIG_ADDR_MAX];
	int64_t p;

	if (c->metrics_port >= 0) {
		smq_errbuf(err, errlen, "%s: given twice (one metrics listener is supported; the "
		    "first is on port %d)", k->name, c->metrics_port);
		return -EINVAL;
	}
	if (parse_port_addr(k, v, &p, addr, err, errlen))
		return -EINVAL;
	c->metrics_port = (int)p;
	strcpy(c->metrics_addr, *addr ? addr : "127.0.0.1");
	return 0;
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
	smq_errbuf(err, errlen, "%s: expected %s%s%s%s%s, got '%s'", k->name, words[0], n > 1 ? " or " : "",
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
		smq_errbuf(err, errlen, "%s: %s", k->name, k->note ? k->note : "only false is supported");
		return -EINVAL;
	}
	return 0;
}

static int set_zero(const struct key *k, const char *v, char *err, size_t errlen)
{
	uint64_t n;

	if (!parse_scaled(v, "", NULL, &n)) {
		smq_errbuf(err, errlen, "%s: expected a number, got '%s'", k->name, v);
		return -EINVAL;
	}
	if (n) {
		smq_errbuf(err, errlen, "%s: %s", k->name, k->note);
		return -EINVAL;
	}
	return 0;
}

/* log_dest: "stderr", "stdout", "syslog", "none" or "file PATH". The first
 * line replaces the default (stderr); later ones add destinations. */
static int set_logdest(const struct key *k, struct smq_config *c, const char *v, char *err,
		       size_t errlen)
{
	static const char *const words[] = { "stderr", "stdout", "syslog" };
	static const unsigned bits[] = { SMQ_LOG_TO_STDERR, SMQ_LOG_TO_STDOUT, SMQ_LOG_TO_SYSLOG };
	unsigned dest = c->log_dest_set ? c->log_dest : 0;
	size_t w = strcspn(v, " \t");
	const char *path = v + w;

	while (is_blank(*path))
		path++;
	for (int i = 0; i < 3; i++)
		if (!strcmp(v, words[i]))
			return c->log_dest = dest | bits[i], c->log_dest_set = true, 0;
	if (!strcmp(v, "none"))
		return c->log_dest = 0, c->log_dest_set = true, 0;
	if (!strcmp(v, "topic") || !strcmp(v, "dlt")) {
		smq_errbuf(err, errlen, "%s: %s is not supported%s", k->name, v,
		    v[0] == 't' ? " yet: shardmq publishes no $SYS topics" : "");
		return -EINVAL;
	}
	if (w != 4 || strncmp(v, "file", 4) || !*path) {
		smq_errbuf(err, errlen, "%s: expected stderr, stdout, syslog, none or file PATH, got '%s'",
		    k->name, v);
		return -EINVAL;
	}
	if (strlen(path) >= SMQ_CONFIG_PATH_MAX) {
		smq_errbuf(err, errlen, "%s: longer than %d characters", k->name, SMQ_CONFIG_PATH_MAX - 1);
		return -EINVAL;
	}
	if ((dest & SMQ_LOG_TO_FILE) && strcmp(c->log_file, path)) {
		smq_errbuf(err, errlen, "%s: a second log file '%s' (only one file, '%s', is possible)",
		    k->name, path, c->log_file);
		return -EINVAL;
	}
	strcpy(c->log_file, path);
	c->log_dest = dest | SMQ_LOG_TO_FILE;
	c->log_dest_set = true;
	return 0;
}

/* log_type: mosquitto's types; the first line replaces the default. */
static int set_logtype(const struct key *k, struct smq_config *c, const char *v, char *err,
		       size_t errlen)
{
	static const struct {
		const char *name;
		unsigned bits;
	} types[] = {
		{ "error", 1u << SMQ_LOG_ERROR },
		{ "warning", 1u << SMQ_LOG_WARNING },
		{ "notice", 1u << SMQ_LOG_NOTICE },
		{ "information", 1u << SMQ_LOG_INFO },
		{ "debug", 1u << SMQ_LOG_DEBUG },
		{ "subscribe", 1u << SMQ_LOG_SUBSCRIBE },
		{ "unsubscribe", 1u << SMQ_LOG_UNSUBSCRIBE },
		{ "websockets", 0 },	/* no websockets, so no such lines */
		{ "all", SMQ_LOG_ALL_TYPES },
	};
	unsigned mask = c->log_types_set ? c->log_types : 0;

	if (!strcmp(v, "none")) {
		c->log_types = 0;
		c->log_types_set = true;
		return 0;
	}
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (!strcmp(v, types[i].name)) {
			c->log_types = mask | types[i].bits;
			c->log_types_set = true;
			return 0;
		}
	}
	smq_errbuf(err, errlen, "%s: expected error, warning, notice, information, debug, subscribe, "
	    "unsubscribe, websockets, all or none, got '%s'", k->name, v);
	return -EINVAL;
}

/* max_topic_alias is a listener key in mosquitto; shardmq has one value
 * for every listener, so two different values cannot both be honoured. */
static int set_alias(const struct key *k, struct smq_config *c, const char *v, char *err,
		     size_t errlen)
{
	int n;

	if (set_int(k, &n, v, err, errlen))
		return -EINVAL;
	if (c->alias_set && n != c->max_topic_alias && c->nlisteners) {
		smq_errbuf(err, errlen, "%s: %d differs from the %d given before; shardmq applies one "
		    "value to every listener", k->name, n, c->max_topic_alias);
		return -EINVAL;
	}
	c->max_topic_alias = n;
	c->alias_set = true;
	return 0;
}

static int set_sync(const struct key *k, struct smq_config *c, const char *v, char *err,
		    size_t errlen)
{
	if (!strcmp(v, "commit") || !strcmp(v, "periodic")) {
		c->persistence_sync = *v == 'c' ? SMQ_SYNC_COMMIT : SMQ_SYNC_PERIODIC;
		c->sync_set = true;
		return 0;
	}
	smq_errbuf(err, errlen, "%s: expected commit or periodic, got '%s'", k->name, v);
	return -EINVAL;
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
	case K_ZERO:
		return set_zero(k, v, err, errlen);
	case K_REFUSE:
		smq_errbuf(err, errlen, "%s: %s", k->name, k->note);
		return -EINVAL;
	case K_WARN:
		smq_errbuf(err, errlen, "%s: %s", k->name, k->note);
		return 1;
	case K_STR:
		return set_string(k, field, (size_t)k->max, v, err, errlen);
	case K_LOGDEST:
		return set_logdest(k, c, v, err, errlen);
	case K_LOGTYPE:
		return set_logtype(k, c, v, err, errlen);
	case K_ALIAS:
		return set_alias(k, c, v, err, errlen);
	case K_METRICS:
		return set_metrics(k, c, v, err, errlen);
	case K_SYNC:
		return set_sync(k, c, v, err, errlen);
	case K_AUTOSAVE:
		if (set_int(k, field, v, err, errlen))
			return -EINVAL;
		c->autosave_set = true;
		return 0;
	case K_INCLUDE:
		smq_errbuf(err, errlen, "%s: only allowed in a configuration file", k->name);
		return -EINVAL;
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
	/* mosquitto: 0 is "no maximum"; the protocol's is 65535 */
	if (!strcmp(k->name, "max_inflight_messages") && !c->max_inflight_messages)
		c->max_inflight_messages = 65535;
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

/* A key of a mosquitto feature shardmq lacks: its note, else NULL. */
static const char *family_note(const char *key)
{
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		const struct family *f = &families[i];

		if (f->prefix ? !strncmp(key, f->name, strlen(f->name)) : !strcmp(key, f->name))
			return f->note;
	}
	return NULL;
}

/* Returns 0, -EINVAL with @err, or 1 with a warning in @err. */
static int set_trimmed(struct smq_config *c, const char *key, const char *v, char *err,
		       size_t errlen)
{
	const struct key *k = find_key(key);
	const char *note;

	if (!k && (note = family_note(key))) {
		smq_errbuf(err, errlen, "%s: %s", key, note);
		return -EINVAL;
	}
	if (!k) {
		smq_errbuf(err, errlen, "unknown key '%s'", key);
		return -EINVAL;
	}
	if (!*v) {
		smq_errbuf(err, errlen, "%s: missing value", key);
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
		smq_errbuf(err, errlen, "%s: out of memory", key);
		return -ENOMEM;
	}
	ret = set_trimmed(c, key, trim(v), err, errlen);
	free(v);
	if (ret > 0) {
		smq_warn("%s", err ? err : key);
		ret = 0;
	}
	return ret;
}

/* Every error of one smq_config_load(), one line each. The first line is
 * kept even if truncated; a later line that does not fit whole is counted
 * and summed up at the end. */
#define TAIL_MAX 26	/* room kept for "\n... and N more" */

struct errs {
	char *buf;
	size_t cap, len;
	unsigned n, dropped;
};

static void errs_add(struct errs *es, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void errs_add(struct errs *es, const char *fmt, ...)
{
	char line[MSG_LEN + SMQ_CONFIG_PATH_MAX];
	size_t n;
	va_list ap;

	es->n++;
	if (!es->buf || !es->cap)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n = strlen(line);
	if (!es->len) {
		snprintf(es->buf, es->cap, "%s", line);
		es->len = strlen(es->buf);
	} else if (es->len + 1 + n + TAIL_MAX < es->cap) {
		es->buf[es->len++] = '\n';
		memcpy(es->buf + es->len, line, n + 1);
		es->len += n;
	} else {
		es->dropped++;
	}
}

static void errs_finish(struct errs *es)
{
	char tail[48];
	size_t n;

	if (!es->dropped || !es->buf)
		return;
	n = (size_t)snprintf(tail, sizeof(tail), "\n... and %u more", es->dropped);
	if (es->len + n < es->cap) {
		memcpy(es->buf + es->len, tail, n + 1);
		es->len += n;
	}
}

/* Where a line is being read from. */
struct where {
	const char *path;
	unsigned lineno;
	int depth;		/* 0: the main file; 1: a file of an include_dir */
	const char *main_real;	/* realpath() of the main file, or NULL */
	struct errs *es;
};

static int load_file(struct smq_config *c, const char *path, int depth, const char *main_real,
		     struct errs *es);

/* mosquitto's include_dir order: by letter ignoring case, and for the same
 * letter the upper case first ("A.conf" < "a.conf" < "B.conf"). */
static int include_cmp(const void *pa, const void *pb)
{
	const unsigned char *a = *(const unsigned char *const *)pa;
	const unsigned char *b = *(const unsigned char *const *)pb;

	for (; *a && *b; a++, b++) {
		int d = toupper(*a) - toupper(*b);

		if (d)
			return d;
		if (*a != *b)
			return *a - *b;
	}
	return *a - *b;
}

static bool is_conf_name(const char *name)
{
	size_t n = strlen(name);

	return n > 5 && !strcmp(name + n - 5, ".conf");
}

/* The names of @dir's files ending ".conf", sorted; -errno on failure. */
static int list_dir(const char *dir, char ***out, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL, **nv;
	size_t n = 0, cap = 0;
	int ret = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!is_conf_name(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				ret = -ENOMEM;
				break;
			}
			v = nv;
		}
		if (!(v[n] = strdup(de->d_name))) {
			ret = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (!ret && n)
		qsort(v, n, sizeof(*v), include_cmp);
	*out = v;
	*count = n;
	return ret;
}

/* include_dir DIR: each of its .conf files, in mosquitto's order. */
static void include_dir(struct smq_config *c, const char *dir, const struct where *w)
{
	char **names = NULL, file[SMQ_CONFIG_PATH_MAX], real[PATH_MAX];
	size_t n = 0;
	int ret;

	if (w->depth) {
		errs_add(w->es, "%s:%u: include_dir: only allowed in the main configuration file",
			 w->path, w->lineno);
		return;
	}
	ret = list_dir(dir, &names, &n);
	if (ret)
		errs_add(w->es, "%s:%u: include_dir: %s: %s", w->path, w->lineno, dir,
			 strerror(-ret));
	for (size_t i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%s/%s", dir, names[i]);
		if (w->main_real && realpath(file, real) && !strcmp(real, w->main_real)) {
			errs_add(w->es, "%s:%u: include_dir: %s holds the main configuration file",
				 w->path, w->lineno, dir);
		} else {
			ret = load_file(c, file, w->depth + 1, w->main_real, w->es);
			if (ret < 0 && ret != -EINVAL)
				errs_add(w->es, "%s:%u: include_dir: %s: %s", w->path, w->lineno,
					 file, strerror(-ret));
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* One line of a file, modified in place. Comments and blank lines are
 * nothing to do. Errors go to w->es, warnings to the log. */
static void load_line(struct smq_config *c, char *line, const struct where *w)
{
	char *key = trim(line), *v, what[MSG_LEN];
	int ret;

	if (!*key || *key == '#')
		return;
	v = key;
	while (*v && !is_blank(*v))
		v++;
	if (*v)
		*v++ = '\0';
	v = trim(v);
	if (!strcmp(key, "include_dir") && *v) {
		include_dir(c, v, w);
		return;
	}
	ret = set_trimmed(c, key, v, what, sizeof(what));
	if (ret < 0)
		errs_add(w->es, "%s:%u: %s", w->path, w->lineno, what);
	else if (ret > 0)
		smq_warn("%s:%u: %s", w->path, w->lineno, what);
}

/* Returns 0, -EINVAL when a line was bad (in @es), or -errno when @path
 * cannot be read (not in @es: the caller words it). */
static int load_file(struct smq_config *c, const char *path, int depth, const char *main_real,
		     struct errs *es)
{
	struct where w = { path, 0, depth, main_real, es };
	unsigned before = es->n;
	char *line = NULL;
	size_t cap = 0;
	int ret = 0;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return -errno;
	errno = 0;
	while (getline(&line, &cap, f) >= 0) {
		w.lineno++;
		load_line(c, line, &w);
		errno = 0;
	}
	if (ferror(f) || errno)
		ret = errno ? -errno : -EIO;
	free(line);
	fclose(f);
	if (!ret && es->n != before)
		ret = -EINVAL;
	return ret;
}

/* Keys may repeat: the last one wins, like any later override. */
int smq_config_load(struct smq_config *c, const char *path, char *err, size_t errlen)
{
	struct errs es = { err, errlen, 0, 0, 0 };
	char real[PATH_MAX];
	int ret;

	if (err && errlen)
		err[0] = '\0';
	ret = load_file(c, path, 0, realpath(path, real) ? real : NULL, &es);
	if (ret < 0 && ret != -EINVAL && !es.n) {
		smq_errbuf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	if (ret < 0 && ret != -EINVAL)
		errs_add(&es, "%s: %s", path, strerror(-ret));
	/* autosave_interval alone asks for mosquitto's periodic saving */
	if (c->autosave_set && c->sync_set && c->persistence_sync == SMQ_SYNC_COMMIT)
		errs_add(&es, "%s: autosave_interval is set but persistence_sync is commit, which "
			 "flushes every change at once: remove one of them", path);
	else if (c->autosave_set && !c->sync_set)
		c->persistence_sync = SMQ_SYNC_PERIODIC;
	errs_finish(&es);
	return es.n ? -EINVAL : 0;
}

unsigned smq_config_log_types(const struct smq_config *c)
{
	if (c->log_types_set)
		return c->log_types;
	if (c->log_level >= SMQ_LOG_DEBUG)
		return SMQ_LOG_ALL_TYPES;
	return (2u << c->log_level) - 1u;
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
	if (l->unix_sock && (l->socket_domain != SMQ_DOMAIN_ANY || l->bind_interface[0])) {
		smq_errbuf(err, errlen, "listener 0 %s: socket_domain and bind_interface do not apply "
		    "to a Unix socket", l->addr);
		return -EINVAL;
	}
	if (l->tls_key && (!l->certfile[0] || !l->keyfile[0])) {
		smq_errbuf(err, errlen, "listener %d: %s is set but TLS needs both certfile and keyfile",
		    l->port, l->tls_key);
		return -EINVAL;
	}
	if (l->require_certificate && !l->cafile[0] && !l->capath[0]) {
		smq_errbuf(err, errlen, "listener %d: require_certificate needs cafile or capath", l->port);
		return -EINVAL;
	}
	if (l->use_identity_as_username && !l->require_certificate) {
		smq_errbuf(err, errlen, "listener %d: use_identity_as_username needs require_certificate "
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
		smq_errbuf(err, errlen, "more than %d listeners", max);
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
			smq_errbuf(err, errlen, "%s is given before any listener line, so it applies to the "
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
