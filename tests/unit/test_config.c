/* test_config.c - the config file parser, table-driven: every key with a
 * good value (from a file and from smq_config_set), every kind of bad value,
 * unknown keys, line numbers, comments, duplicates, unreadable files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

static struct smq_config cfg;
static char err[600];
static char path[64];

static void setup(void)
{
	smq_config_defaults(&cfg);
	memset(err, 0, sizeof(err));
	path[0] = '\0';
}

static void teardown(void)
{
	if (path[0])
		unlink(path);
	smq_config_fini(&cfg);
}

TestSuite(core_config, .init = setup, .fini = teardown);

/* Write @text to a fresh temp file; its name goes to @path. */
static void write_file(const char *text)
{
	int fd;

	if (path[0])
		unlink(path);
	strcpy(path, "/tmp/smq_config_XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int load(const char *text)
{
	write_file(text);
	return smq_config_load(&cfg, path, err, sizeof(err));
}

Test(core_config, defaults_match_the_documentation)
{
	cr_assert_eq(cfg.port, 1883);
	cr_assert_str_eq(cfg.bind_address, "127.0.0.1");
	cr_assert_eq(cfg.shards, 0);
	cr_assert_not(cfg.pin_cpus);
	cr_assert_eq(cfg.ncpus, 0);
	cr_assert_eq(cfg.max_connections, 100000);
	cr_assert_eq(cfg.max_packet_size, 1048576);
	cr_assert_eq(cfg.max_inflight_messages, 20);
	cr_assert_eq(cfg.max_queued_messages, 1000);
	cr_assert_eq(cfg.max_queued_bytes, 67108864);
	cr_assert_eq(cfg.max_keepalive, 65535);
	cr_assert(cfg.allow_anonymous);
	cr_assert(cfg.allow_zero_length_clientid);
	cr_assert_not(cfg.queue_qos0_messages);
	cr_assert(cfg.retain_available);
	cr_assert_eq(cfg.max_qos, 2);
	cr_assert_eq(cfg.client_max_write_buffer, 1048576);
	cr_assert_eq(cfg.persistent_client_expiration, 0);
	cr_assert_eq(cfg.log_level, SMQ_LOG_NOTICE);
	cr_assert_str_eq(cfg.password_file, "");
	cr_assert_eq(cfg.max_retained_messages, 100000);
	cr_assert_eq(cfg.sys_interval, 10, "mosquitto's default");
	cr_assert_eq(cfg.message_size_limit, 0);
	cr_assert(cfg.set_tcp_nodelay);
	cr_assert_not(cfg.upgrade_outgoing_qos);
	cr_assert(cfg.connection_messages);
	cr_assert(cfg.log_timestamp);
	cr_assert_str_eq(cfg.clientid_prefixes, "");
	cr_assert_str_eq(cfg.auto_id_prefix, "auto-");
	cr_assert_eq(cfg.max_topic_alias, 10);
	cr_assert_eq(cfg.log_dest, SMQ_LOG_TO_STDERR);
	cr_assert_str_eq(cfg.pid_file, "");
	cr_assert_str_eq(cfg.user, "");
	cr_assert_eq(smq_config_log_types(&cfg), 7u, "error, warning, notice");
}

Test(core_config, empty_file_keeps_defaults)
{
	struct smq_config d;

	smq_config_defaults(&d);
	cr_assert_eq(load(""), 0);
	cr_assert_eq(memcmp(&d, &cfg, sizeof(d)), 0);
	cr_assert_eq(load("# only a comment\n\n   \n\t# indented comment\n"), 0);
	cr_assert_eq(memcmp(&d, &cfg, sizeof(d)), 0);
}

enum ftype { T_INT, T_U64, T_BOOL, T_STR };

struct good {
	const char *key, *value;
	size_t off;
	enum ftype type;
	int64_t num;
	const char *str;
};

#define G(k, v, field, t, n, s) { k, v, offsetof(struct smq_config, field), t, n, s }

/* Every key, each with a value different from its default. */
static const struct good goods[] = {
	G("port", "1884", port, T_INT, 1884, NULL),
	G("port", "0", port, T_INT, 0, NULL),
	G("port", "65535", port, T_INT, 65535, NULL),
	G("bind_address", "0.0.0.0", bind_address, T_STR, 0, "0.0.0.0"),
	G("bind_address", "::1", bind_address, T_STR, 0, "::1"),
	G("shards", "4", shards, T_INT, 4, NULL),
	G("shards", "64", shards, T_INT, 64, NULL),
	G("max_connections", "-1", max_connections, T_INT, -1, NULL),
	G("max_connections", "5000", max_connections, T_INT, 5000, NULL),
	G("max_packet_size", "0", max_packet_size, T_U64, 0, NULL),
	G("max_packet_size", "2k", max_packet_size, T_U64, 2048, NULL),
	G("max_packet_size", "268435460", max_packet_size, T_U64, 268435460, NULL),
	G("max_inflight_messages", "1", max_inflight_messages, T_INT, 1, NULL),
	G("max_inflight_messages", "65535", max_inflight_messages, T_INT, 65535, NULL),
	/* mosquitto: 0 is no maximum, which the protocol caps at 65535 */
	G("max_inflight_messages", "0", max_inflight_messages, T_INT, 65535, NULL),
	G("max_queued_messages", "0", max_queued_messages, T_INT, 0, NULL),
	G("max_queued_messages", "2147483647", max_queued_messages, T_INT, 2147483647, NULL),
	G("max_queued_bytes", "1M", max_queued_bytes, T_U64, 1048576, NULL),
	G("max_queued_bytes", "2g", max_queued_bytes, T_U64, 2147483648, NULL),
	G("max_queued_bytes", "0", max_queued_bytes, T_U64, 0, NULL),
	G("max_keepalive", "60", max_keepalive, T_INT, 60, NULL),
	G("allow_anonymous", "false", allow_anonymous, T_BOOL, 0, NULL),
	G("allow_zero_length_clientid", "false", allow_zero_length_clientid, T_BOOL, 0, NULL),
	G("queue_qos0_messages", "true", queue_qos0_messages, T_BOOL, 1, NULL),
	G("retain_available", "false", retain_available, T_BOOL, 0, NULL),
	G("max_qos", "0", max_qos, T_INT, 0, NULL),
	G("max_qos", "1", max_qos, T_INT, 1, NULL),
	G("client_max_write_buffer", "64K", client_max_write_buffer, T_U64, 65536, NULL),
	G("client_max_write_buffer", "1G", client_max_write_buffer, T_U64, 1073741824, NULL),
	G("persistent_client_expiration", "3600", persistent_client_expiration, T_U64, 3600, NULL),
	G("persistent_client_expiration", "2h", persistent_client_expiration, T_U64, 7200, NULL),
	G("persistent_client_expiration", "3d", persistent_client_expiration, T_U64, 259200,
	  NULL),
	G("persistent_client_expiration", "1w", persistent_client_expiration, T_U64, 604800,
	  NULL),
	/* mosquitto's units: m is a month of 30 days, y a year of 365 */
	G("persistent_client_expiration", "2m", persistent_client_expiration, T_U64, 5184000,
	  NULL),
	G("persistent_client_expiration", "1y", persistent_client_expiration, T_U64, 31536000,
	  NULL),
	G("persistent_client_expiration", "90s", persistent_client_expiration, T_U64, 90, NULL),
	G("message_size_limit", "1k", message_size_limit, T_U64, 1024, NULL),
	G("message_size_limit", "268435455", message_size_limit, T_U64, 268435455, NULL),
	G("upgrade_outgoing_qos", "true", upgrade_outgoing_qos, T_BOOL, 1, NULL),
	G("set_tcp_nodelay", "false", set_tcp_nodelay, T_BOOL, 0, NULL),
	G("allow_duplicate_messages", "false", allow_duplicate_messages, T_BOOL, 0, NULL),
	G("connection_messages", "false", connection_messages, T_BOOL, 0, NULL),
	G("log_timestamp", "false", log_timestamp, T_BOOL, 0, NULL),
	G("log_timestamp_format", "%Y-%m-%dT%H:%M:%S", log_timestamp_format, T_STR, 0,
	  "%Y-%m-%dT%H:%M:%S"),
	G("log_facility", "5", log_facility, T_INT, 5, NULL),
	G("clientid_prefixes", "secure-", clientid_prefixes, T_STR, 0, "secure-"),
	G("auto_id_prefix", "gen-", auto_id_prefix, T_STR, 0, "gen-"),
	G("max_topic_alias", "0", max_topic_alias, T_INT, 0, NULL),
	G("max_topic_alias", "65535", max_topic_alias, T_INT, 65535, NULL),
	G("pid_file", "/run/shardmq.pid", pid_file, T_STR, 0, "/run/shardmq.pid"),
	G("user", "mosquitto", user, T_STR, 0, "mosquitto"),
	G("log_level", "debug", log_level, T_INT, SMQ_LOG_DEBUG, NULL),
	G("log_level", "error", log_level, T_INT, SMQ_LOG_ERROR, NULL),
	G("log_level", "warning", log_level, T_INT, SMQ_LOG_WARNING, NULL),
	G("log_level", "info", log_level, T_INT, SMQ_LOG_INFO, NULL),
	G("password_file", "/etc/shardmq/passwd file", password_file, T_STR, 0,
	  "/etc/shardmq/passwd file"),
	G("max_retained_messages", "0", max_retained_messages, T_INT, 0, NULL),
	G("max_retained_messages", "12", max_retained_messages, T_INT, 12, NULL),
	G("sys_interval", "0", sys_interval, T_INT, 0, NULL),
	G("sys_interval", "1", sys_interval, T_INT, 1, NULL),
	G("sys_interval", "3600", sys_interval, T_INT, 3600, NULL),
};

static void check_good(const struct good *g, const char *how)
{
	const char *field = (const char *)&cfg + g->off;

	switch (g->type) {
	case T_INT:
		cr_assert_eq(*(const int *)field, g->num, "%s %s %s", how, g->key, g->value);
		break;
	case T_U64:
		cr_assert_eq(*(const uint64_t *)field, (uint64_t)g->num, "%s %s %s", how, g->key,
			     g->value);
		break;
	case T_BOOL:
		cr_assert_eq(*(const bool *)field, g->num != 0, "%s %s %s", how, g->key, g->value);
		break;
	case T_STR:
		cr_assert_str_eq(field, g->str, "%s %s %s", how, g->key, g->value);
		break;
	}
}

Test(core_config, every_key_accepts_good_values_from_a_file)
{
	char text[512];

	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		smq_config_defaults(&cfg);
		snprintf(text, sizeof(text), "%s %s\n", goods[i].key, goods[i].value);
		cr_assert_eq(load(text), 0, "'%s': %s", text, err);
		check_good(&goods[i], "file");
	}
}

Test(core_config, every_key_accepts_good_values_from_set)
{
	char padded[128];

	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		smq_config_defaults(&cfg);
		snprintf(padded, sizeof(padded), "  %s\t", goods[i].value);
		cr_assert_eq(smq_config_set(&cfg, goods[i].key, padded, err, sizeof(err)), 0,
			     "%s %s: %s", goods[i].key, goods[i].value, err);
		check_good(&goods[i], "set");
	}
}

struct bad {
	const char *line;
	const char *msg;	/* the error after "FILE:1: " */
};

static const struct bad bads[] = {
	/* counts: not a number, trailing junk, range, overflow */
	{ "max_inflight_messages abc",
	  "max_inflight_messages: expected a number 0 or 1..65535, got 'abc'" },
	{ "max_inflight_messages 65536",
	  "max_inflight_messages: expected a number 0 or 1..65535, got '65536'" },
	{ "port -1", "port: expected a number 0..65535, got '-1'" },
	{ "port 18 83", "port: expected a number 0..65535, got '18 83'" },
	{ "port 1883 # comment", "port: expected a number 0..65535, got '1883 # comment'" },
	{ "port 0x10", "port: expected a number 0..65535, got '0x10'" },
	{ "port +1", "port: expected a number 0..65535, got '+1'" },
	{ "port 1.5", "port: expected a number 0..65535, got '1.5'" },
	{ "shards 65", "shards: expected a number 0..64, got '65'" },
	{ "max_connections -2", "max_connections: expected a number -1..2147483647, got '-2'" },
	{ "max_queued_messages 99999999999999999999999",
	  "max_queued_messages: expected a number 0..2147483647, got '99999999999999999999999'" },
	{ "max_keepalive 65536", "max_keepalive: expected a number 0..65535, got '65536'" },
	{ "max_qos 3", "max_qos: expected a number 0..2, got '3'" },
	{ "max_retained_messages -1",
	  "max_retained_messages: expected a number 0..2147483647, got '-1'" },
	/* sizes */
	{ "max_packet_size 1", "max_packet_size: expected a size 0 or 2..268435460 bytes "
	  "(suffix k, m or g allowed), got '1'" },
	{ "max_packet_size 1g", "max_packet_size: expected a size 0 or 2..268435460 bytes "
	  "(suffix k, m or g allowed), got '1g'" },
	{ "max_queued_bytes 10kb", "max_queued_bytes: expected a size 0..1099511627776 bytes "
	  "(suffix k, m or g allowed), got '10kb'" },
	{ "max_queued_bytes 10t", "max_queued_bytes: expected a size 0..1099511627776 bytes "
	  "(suffix k, m or g allowed), got '10t'" },
	{ "max_queued_bytes -5", "max_queued_bytes: expected a size 0..1099511627776 bytes "
	  "(suffix k, m or g allowed), got '-5'" },
	{ "max_queued_bytes 99999999999999g", "max_queued_bytes: expected a size "
	  "0..1099511627776 bytes (suffix k, m or g allowed), got '99999999999999g'" },
	{ "client_max_write_buffer 0", "client_max_write_buffer: expected a size "
	  "1..1099511627776 bytes (suffix k, m or g allowed), got '0'" },
	/* seconds */
	{ "persistent_client_expiration 1x", "persistent_client_expiration: expected seconds "
	  "0..4294967295 (suffix s, h, d, w, m = 30 days or y = 365 days allowed), got '1x'" },
	{ "persistent_client_expiration 9999w", "persistent_client_expiration: expected "
	  "seconds 0..4294967295 (suffix s, h, d, w, m = 30 days or y = 365 days allowed), got "
	  "'9999w'" },
	{ "persistent_client_expiration 200y", "persistent_client_expiration: expected "
	  "seconds 0..4294967295 (suffix s, h, d, w, m = 30 days or y = 365 days allowed), got "
	  "'200y'" },
	{ "message_size_limit 268435456", "message_size_limit: expected a size 0..268435455 bytes "
	  "(suffix k, m or g allowed), got '268435456'" },
	{ "clientid_prefixes 0123456789012345678901234567890123",
	  "clientid_prefixes: longer than 31 characters" },
	{ "log_facility 8", "log_facility: expected a number 0..7, got '8'" },
	{ "max_topic_alias 65536", "max_topic_alias: expected a number 0..65535, got '65536'" },
	/* mosquitto keys of features shardmq lacks: refused, never ignored */
	{ "persistence maybe", "persistence: expected true or false, got 'maybe'" },
	{ "persistence_sync always", "persistence_sync: expected commit or periodic, got 'always'" },
	{ "autosave_interval -1", "autosave_interval: expected a number 0..2147483647, got '-1'" },
	{ "autosave_on_changes true", "autosave_on_changes: only false is supported: shardmq "
	  "writes every change as it happens (see persistence_sync), so there is no change count "
	  "to save after" },
	{ "check_retain_source true", "check_retain_source: only false is supported: shardmq does "
	  "not check a retained message's publisher again when it is sent (mosquitto's default is "
	  "true)" },
	{ "memory_limit 1000000", "memory_limit: not supported: shardmq has no heap limit; only 0 "
	  "(no limit) is accepted" },
	{ "memory_limit lots", "memory_limit: expected a number, got 'lots'" },
	{ "sys_interval -1", "sys_interval: expected a number 0..2147483647, got '-1'" },
	{ "sys_interval often", "sys_interval: expected a number 0..2147483647, got 'often'" },
	{ "max_inflight_bytes 100", "max_inflight_bytes: not supported yet: only 0 (no byte limit; "
	  "max_inflight_messages applies) is accepted" },
	{ "auth_plugin /usr/lib/x.so", "auth_plugin: plugins are not supported" },
	{ "plugin /usr/lib/mosquitto_dynamic_security.so", "plugin: plugins are not supported" },
	{ "plugin_opt_config_file /x.json", "plugin_opt_config_file: plugins are not supported" },
	{ "auth_opt_db x", "auth_opt_db: plugins are not supported" },
	{ "psk_file /etc/psk", "psk_file: not supported: TLS-PSK is not built" },
	{ "psk_hint hint", "psk_hint: not supported: TLS-PSK is not built" },
	{ "connection bridge-01", "connection: bridges are not supported yet" },
	{ "address 10.0.0.1:1883", "address: bridges are not supported yet" },
	{ "topic # both 0", "topic: bridges are not supported yet" },
	{ "bridge_cafile /ca.pem", "bridge_cafile: bridges are not supported yet" },
	{ "remote_username u", "remote_username: bridges are not supported yet" },
	{ "websockets_log_level 1", "websockets_log_level: only 0 is supported: it is a "
	  "libwebsockets log mask, and shardmq's WebSocket layer is not libwebsockets (failed "
	  "WebSocket connections are logged as notices)" },
	{ "http_dir /www", "http_dir: not supported: a websockets listener serves MQTT only, not "
	  "files" },
	{ "websockets_foo 1", "websockets_foo: unknown websockets key (there are "
	  "websockets_headers_size and websockets_log_level)" },
	{ "mount_point site/", "mount_point: not supported yet" },
	{ "crlfile /crl.pem", "crlfile: not supported yet" },
	{ "use_username_as_clientid true", "use_username_as_clientid: not supported yet" },
	/* logging */
	{ "log_dest topic", "log_dest: topic is not supported yet: shardmq publishes no $SYS "
	  "topics" },
	{ "log_dest file", "log_dest: expected stderr, stdout, syslog, none or file PATH, got "
	  "'file'" },
	{ "log_dest console", "log_dest: expected stderr, stdout, syslog, none or file PATH, got "
	  "'console'" },
	{ "log_type verbose", "log_type: expected error, warning, notice, information, debug, "
	  "subscribe, unsubscribe, websockets, all or none, got 'verbose'" },
	{ "include_dir", "include_dir: missing value" },
	/* booleans */
	{ "allow_anonymous yes", "allow_anonymous: expected true or false, got 'yes'" },
	{ "retain_available 1", "retain_available: expected true or false, got '1'" },
	{ "queue_qos0_messages TRUE", "queue_qos0_messages: expected true or false, got 'TRUE'" },
	/* enums and strings */
	{ "log_level verbose",
	  "log_level: expected error, warning, notice, info or debug, got 'verbose'" },
	{ "bind_address 127.0.0.1 ::1", "bind_address: expected one address, got '127.0.0.1 ::1'" },
	/* CPU lists */
	{ "pin_cpus 7-4", "pin_cpus: expected true, false or a list of CPU ids 0..4095 like "
	  "'0,2,4-7' (at most 256 CPUs), got '7-4'" },
	{ "pin_cpus 1,,2", "pin_cpus: expected true, false or a list of CPU ids 0..4095 like "
	  "'0,2,4-7' (at most 256 CPUs), got '1,,2'" },
	{ "pin_cpus 1,", "pin_cpus: expected true, false or a list of CPU ids 0..4095 like "
	  "'0,2,4-7' (at most 256 CPUs), got '1,'" },
	{ "pin_cpus 4096", "pin_cpus: expected true, false or a list of CPU ids 0..4095 like "
	  "'0,2,4-7' (at most 256 CPUs), got '4096'" },
	{ "pin_cpus 0-256", "pin_cpus: expected true, false or a list of CPU ids 0..4095 like "
	  "'0,2,4-7' (at most 256 CPUs), got '0-256'" },
	{ "pin_cpus yes", "pin_cpus: expected true, false or a list of CPU ids 0..4095 like "
	  "'0,2,4-7' (at most 256 CPUs), got 'yes'" },
	{ "pin_cpus 1-2-3", "pin_cpus: expected true, false or a list of CPU ids 0..4095 like "
	  "'0,2,4-7' (at most 256 CPUs), got '1-2-3'" },
	/* listener */
	{ "listener abc", "listener: expected PORT (0..65535) and an optional ADDRESS, got 'abc'" },
	{ "listener 70000 0.0.0.0",
	  "listener: expected PORT (0..65535) and an optional ADDRESS, got '70000 0.0.0.0'" },
	{ "listener 1883 a b", "listener: expected PORT (0..65535) and an optional ADDRESS, got "
	  "'1883 a b'" },
	/* shape of the line */
	{ "pot 1883", "unknown key 'pot'" },
	{ "Port 1883", "unknown key 'Port'" },
	{ "port", "port: missing value" },
	{ "password_file   \t", "password_file: missing value" },
};

Test(core_config, every_kind_of_bad_value_is_refused_with_file_and_line)
{
	char text[256], want[700];

	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		smq_config_defaults(&cfg);
		snprintf(text, sizeof(text), "%s\n", bads[i].line);
		cr_assert_eq(load(text), -EINVAL, "'%s' was accepted", bads[i].line);
		snprintf(want, sizeof(want), "%s:1: %s", path, bads[i].msg);
		cr_assert_str_eq(err, want);
	}
}

Test(core_config, set_refuses_the_same_bad_values_without_a_prefix)
{
	char key[64];

	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const char *sp = strpbrk(bads[i].line, " \t");
		size_t n = sp ? (size_t)(sp - bads[i].line) : strlen(bads[i].line);
		struct smq_config before;

		memcpy(key, bads[i].line, n);
		key[n] = '\0';
		before = cfg;
		cr_assert_eq(smq_config_set(&cfg, key, sp ? sp : "", err, sizeof(err)), -EINVAL,
			     "'%s' was accepted", bads[i].line);
		cr_assert_str_eq(err, bads[i].msg);
		cr_assert_eq(memcmp(&before, &cfg, sizeof(cfg)), 0, "'%s' changed the config",
			     bads[i].line);
	}
}

Test(core_config, line_numbers_count_comments_and_blank_lines)
{
	const char *text = "# shardmq test config\n"
			   "\n"
			   "port 1884\n"
			   "   # indented comment\n"
			   "\t\n"
			   "max_qos 1\n"
			   "max_inflight_messages abc\n"
			   "port 1885\n";
	char want[700];

	cr_assert_eq(load(text), -EINVAL);
	snprintf(want, sizeof(want),
		 "%s:7: max_inflight_messages: expected a number 0 or 1..65535, got 'abc'", path);
	cr_assert_str_eq(err, want);
	cr_assert_eq(cfg.port, 1885, "every good line is applied, after the bad one too");
	cr_assert_eq(cfg.max_qos, 1);
}

Test(core_config, whole_file_with_blanks_tabs_and_crlf)
{
	const char *text = "port\t1999\r\n"
			   "   bind_address    10.0.0.1   \r\n"
			   "\r\n"
			   "max_queued_bytes 8m\n"
			   "log_level info";	/* no final newline */

	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert_eq(cfg.port, 1999);
	cr_assert_str_eq(cfg.bind_address, "10.0.0.1");
	cr_assert_eq(cfg.max_queued_bytes, 8ull << 20);
	cr_assert_eq(cfg.log_level, SMQ_LOG_INFO);
	cr_assert_str_eq(err, "", "no error text on success");
}

Test(core_config, duplicate_keys_last_one_wins)
{
	cr_assert_eq(load("port 1\nport 2\nmax_qos 0\nport 3\n"), 0);
	cr_assert_eq(cfg.port, 3);
	cr_assert_eq(cfg.max_qos, 0);
}

Test(core_config, listener_lines_add_listeners_with_optional_address)
{
	cr_assert_eq(load("listener 1884\nlistener 8883   0.0.0.0\n"), 0, "%s", err);
	cr_assert_eq(cfg.nlisteners, 2);
	cr_assert_eq(cfg.listeners[0].port, 1884);
	cr_assert_str_eq(cfg.listeners[0].addr, "");
	cr_assert_eq(cfg.listeners[1].port, 8883);
	cr_assert_str_eq(cfg.listeners[1].addr, "0.0.0.0");
	cr_assert_eq(cfg.port, 1883, "the default listener is untouched");
}

Test(core_config, pin_cpus_true_false_and_lists)
{
	int want[] = { 0, 2, 4, 5, 6, 7, 9 };

	cr_assert_eq(load("pin_cpus 0,2,4-7, 9\n"), 0, "%s", err);
	cr_assert(cfg.pin_cpus);
	cr_assert_eq(cfg.ncpus, 7);
	for (int i = 0; i < 7; i++)
		cr_assert_eq(cfg.cpus[i], want[i]);
	cr_assert_eq(load("pin_cpus true\n"), 0);
	cr_assert(cfg.pin_cpus);
	cr_assert_eq(cfg.ncpus, 0, "true means shard i on CPU i, no list");
	cr_assert_eq(load("pin_cpus 3\n"), 0);
	cr_assert_eq(cfg.ncpus, 1);
	cr_assert_eq(cfg.cpus[0], 3);
	cr_assert_eq(load("pin_cpus 0-255\n"), 0, "%s", err);
	cr_assert_eq(cfg.ncpus, 256);
	cr_assert_eq(cfg.cpus[255], 255);
	cr_assert_eq(load("pin_cpus false\n"), 0);
	cr_assert_not(cfg.pin_cpus);
	cr_assert_eq(cfg.ncpus, 0);
}

Test(core_config, bad_cpu_list_leaves_the_previous_list)
{
	cr_assert_eq(smq_config_set(&cfg, "pin_cpus", "1,3", err, sizeof(err)), 0);
	cr_assert_eq(smq_config_set(&cfg, "pin_cpus", "5,6,x", err, sizeof(err)), -EINVAL);
	cr_assert(cfg.pin_cpus);
	cr_assert_eq(cfg.ncpus, 2);
	cr_assert_eq(cfg.cpus[0], 1);
	cr_assert_eq(cfg.cpus[1], 3);
}

Test(core_config, too_long_strings_are_refused)
{
	char big[5000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(smq_config_set(&cfg, "password_file", big, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "password_file: longer than 4095 characters");
	big[4095] = '\0';
	cr_assert_eq(smq_config_set(&cfg, "password_file", big, err, sizeof(err)), 0);
	cr_assert_eq(strlen(cfg.password_file), 4095);
	big[256] = '\0';
	cr_assert_eq(smq_config_set(&cfg, "bind_address", big, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "bind_address: longer than 255 characters");
	cr_assert_str_eq(cfg.bind_address, "127.0.0.1");
}

Test(core_config, long_lines_in_a_file_are_read_whole)
{
	char *text = malloc(9000);

	cr_assert_not_null(text);
	strcpy(text, "password_file ");
	memset(text + 14, 'p', 4000);
	strcpy(text + 14 + 4000, "\nmax_qos 7\n");
	cr_assert_eq(load(text), -EINVAL);
	cr_assert(strstr(err, ":2: max_qos: expected a number 0..2, got '7'"), "%s", err);
	cr_assert_eq(strlen(cfg.password_file), 4000);
	free(text);
}

Test(core_config, missing_file_reports_errno_and_name)
{
	cr_assert_eq(smq_config_load(&cfg, "/nonexistent/shardmq.conf", err, sizeof(err)),
		     -ENOENT);
	cr_assert_str_eq(err, "/nonexistent/shardmq.conf: No such file or directory");
}

Test(core_config, directory_is_an_unreadable_file)
{
	cr_assert_eq(smq_config_load(&cfg, "/tmp", err, sizeof(err)), -EISDIR);
	cr_assert_str_eq(err, "/tmp: Is a directory");
}

Test(core_config, small_or_null_error_buffer_is_safe)
{
	char small[8];

	memset(small, 'x', sizeof(small));
	cr_assert_eq(smq_config_set(&cfg, "pot", "1", small, sizeof(small)), -EINVAL);
	cr_assert_str_eq(small, "unknown");
	cr_assert_eq(smq_config_set(&cfg, "pot", "1", NULL, 0), -EINVAL);
	write_file("pot 1\n");
	cr_assert_eq(smq_config_load(&cfg, path, NULL, 0), -EINVAL);
}

Test(core_config, config_copies_by_assignment)
{
	struct smq_config copy;

	cr_assert_eq(smq_config_set(&cfg, "bind_address", "::", err, sizeof(err)), 0);
	copy = cfg;
	cr_assert_eq(smq_config_set(&cfg, "bind_address", "::1", err, sizeof(err)), 0);
	cr_assert_str_eq(copy.bind_address, "::", "strings are inline, not shared");
}

/* ---- listeners (mosquitto 2 rules) ------------------------------------- */

static struct smq_listener_cfg lst[SMQ_CONFIG_MAX_LISTENERS + 1];

static int listeners(void)
{
	return smq_config_listeners(&cfg, lst, SMQ_CONFIG_MAX_LISTENERS + 1, err, sizeof(err));
}

Test(core_config, no_listener_means_loopback_v4_and_v6_with_anonymous)
{
	cr_assert_eq(listeners(), 2);
	cr_assert_str_eq(lst[0].addr, "127.0.0.1");
	cr_assert_str_eq(lst[1].addr, "::1");
	cr_assert_eq(lst[0].port, 1883);
	cr_assert(smq_config_anonymous(&cfg));
}

Test(core_config, listener_without_address_listens_everywhere_and_refuses_anonymous)
{
	cr_assert_eq(load("listener 1884\n"), 0, "%s", err);
	cr_assert_eq(listeners(), 1);
	cr_assert_str_eq(lst[0].addr, "");
	cr_assert_eq(lst[0].port, 1884);
	cr_assert_not(smq_config_anonymous(&cfg), "mosquitto 2: a listener turns anonymous off");
}

Test(core_config, allow_anonymous_given_wins_over_the_listener_default)
{
	cr_assert_eq(load("allow_anonymous true\nlistener 1884\n"), 0, "%s", err);
	cr_assert(smq_config_anonymous(&cfg));
}

Test(core_config, every_listener_line_is_kept_with_its_own_settings)
{
	cr_assert_eq(load("listener 1883 127.0.0.1\nmax_connections 5\n"
			  "listener 8883\ncertfile /c.pem\nkeyfile /k.pem\ncafile /ca.pem\n"
			  "require_certificate true\ntls_version tlsv1.3\nsocket_domain ipv4\n"),
		     0, "%s", err);
	cr_assert_eq(listeners(), 2, "%s", err);
	cr_assert_eq(lst[0].max_connections, 5);
	cr_assert_not(smq_config_listener_tls(&lst[0]));
	cr_assert(smq_config_listener_tls(&lst[1]));
	cr_assert_str_eq(lst[1].certfile, "/c.pem");
	cr_assert(lst[1].require_certificate);
	cr_assert_str_eq(lst[1].tls_version, "tlsv1.3");
	cr_assert_eq(lst[1].socket_domain, SMQ_DOMAIN_IPV4);
	cr_assert_eq(lst[1].max_connections, -1);
	cr_assert_eq(cfg.max_connections, 100000, "the broker-wide limit is untouched");
}

Test(core_config, port_with_listeners_adds_the_default_listener)
{
	cr_assert_eq(load("port 1999\nbind_address 127.0.0.1\nlistener 2000 127.0.0.1\n"), 0,
		     "%s", err);
	cr_assert_eq(listeners(), 2);
	cr_assert_eq(lst[0].port, 1999);
	cr_assert_eq(lst[1].port, 2000);
}

Test(core_config, tls_key_before_any_listener_is_refused_when_it_would_be_ignored)
{
	cr_assert_eq(load("certfile /c.pem\nkeyfile /k.pem\nlistener 8883\n"), 0, "%s", err);
	cr_assert_eq(listeners(), -EINVAL);
	cr_assert(strstr(err, "certfile") && strstr(err, "before any listener"), "%s", err);
}

Test(core_config, tls_listener_needs_cert_and_key)
{
	cr_assert_eq(load("listener 8883\ncertfile /c.pem\n"), 0, "%s", err);
	cr_assert_eq(listeners(), -EINVAL);
	cr_assert(strstr(err, "certfile and keyfile"), "%s", err);
}

Test(core_config, websockets_listener_and_its_header_bound)
{
	cr_assert_eq(load("listener 1883\nlistener 8080\nprotocol websockets\n"
			  "websockets_headers_size 8k\n"), 0, "%s", err);
	cr_assert_eq(listeners(), 2, "%s", err);
	cr_assert_eq(lst[0].protocol, SMQ_PROTO_MQTT);
	cr_assert_eq(lst[1].protocol, SMQ_PROTO_WEBSOCKETS);
	cr_assert_eq(cfg.websockets_headers_size, 8192);
}

Test(core_config, bad_listener_values_name_the_line)
{
	cr_assert_eq(load("listener 1883\ntls_version tlsv1.1\n"), -EINVAL);
	cr_assert(strstr(err, ":2: tls_version"), "%s", err);
	cr_assert_eq(load("listener 1883\nsocket_domain ipx\n"), -EINVAL);
	cr_assert(strstr(err, ":2: socket_domain"), "%s", err);
	cr_assert_eq(load("per_listener_settings true\n"), -EINVAL);
	cr_assert(strstr(err, "only false"), "%s", err);
}

Test(core_config, use_identity_as_username_needs_require_certificate)
{
	cr_assert_eq(load("listener 8883\ncertfile /c\nkeyfile /k\nuse_identity_as_username true\n"),
		     0, "%s", err);
	cr_assert_eq(listeners(), -EINVAL);
	cr_assert(strstr(err, "require_certificate"), "%s", err);
}

/* ---- mosquitto.conf compatibility -------------------------------------- */

Test(core_config, every_bad_line_is_reported_at_once)
{
	char want[2000];

	cr_assert_eq(load("pot 1\nport 1884\nmax_qos 9\n# fine\npersistence yes\nmax_qos 1\n"),
		     -EINVAL);
	snprintf(want, sizeof(want),
		 "%s:1: unknown key 'pot'\n"
		 "%s:3: max_qos: expected a number 0..2, got '9'\n"
		 "%s:5: persistence: expected true or false, got 'yes'", path, path, path);
	cr_assert_str_eq(err, want);
	cr_assert_eq(cfg.port, 1884, "good lines are applied");
	cr_assert_eq(cfg.max_qos, 1);
}

Test(core_config, errors_beyond_the_buffer_are_counted)
{
	char text[4000] = "", small[200];
	int n = 0;

	for (int i = 0; i < 50; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "bad_key_%d 1\n", i);
	write_file(text);
	cr_assert_eq(smq_config_load(&cfg, path, small, sizeof(small)), -EINVAL);
	cr_assert(strstr(small, ":1: unknown key 'bad_key_0'"), "%s", small);
	cr_assert(strstr(small, "\n... and "), "the rest is counted: %s", small);
	cr_assert_lt(strlen(small), sizeof(small));
}

Test(core_config, obsolete_keys_are_accepted_with_a_warning)
{
	int fds[2];
	char buf[512] = "";
	ssize_t n;

	cr_assert_eq(pipe(fds), 0);
	smq_log_set_fd(fds[1]);
	cr_assert_eq(load("retry_interval 20\nstore_clean_interval 10\n"), 0, "%s", err);
	smq_log_set_fd(2);
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	cr_assert_gt(n, 0);
	cr_assert(strstr(buf, ":1: retry_interval: obsolete"), "%s", buf);
}

Test(core_config, refused_values_of_mosquitto_keys_accept_their_supported_one)
{
	cr_assert_eq(load("persistence false\ncheck_retain_source false\nmemory_limit 0\n"
			  "sys_interval 0\nmax_inflight_bytes 0\nper_listener_settings false\n"),
		     0, "%s", err);
}

Test(core_config, sys_interval_zero_turns_sys_off_and_other_values_set_the_period)
{
	cr_assert_eq(load("sys_interval 0\n"), 0, "%s", err);
	cr_assert_eq(cfg.sys_interval, 0);
	cr_assert_eq(load("sys_interval 30\n"), 0, "%s", err);
	cr_assert_eq(cfg.sys_interval, 30);
	cr_assert_eq(load("sys_interval 10s\n"), -EINVAL, "whole seconds, no suffix");
	cr_assert(strstr(err, ":1: sys_interval: expected a number"), "%s", err);
}

Test(core_config, max_queued_messages_zero_is_accepted_as_no_maximum)
{
	cr_assert_eq(load("max_queued_messages 0\n"), 0, "%s", err);
	cr_assert_eq(cfg.max_queued_messages, 0);
}

Test(core_config, log_dest_first_line_replaces_the_default_and_later_ones_add)
{
	cr_assert_eq(load("log_dest syslog\nlog_dest file /var/log/mosquitto/mosquitto.log\n"
			  "log_dest stdout\n"), 0, "%s", err);
	cr_assert_eq(cfg.log_dest, SMQ_LOG_TO_SYSLOG | SMQ_LOG_TO_FILE | SMQ_LOG_TO_STDOUT);
	cr_assert_str_eq(cfg.log_file, "/var/log/mosquitto/mosquitto.log");
	smq_config_defaults(&cfg);
	cr_assert_eq(load("log_dest stderr\nlog_dest none\n"), 0, "%s", err);
	cr_assert_eq(cfg.log_dest, 0, "none: no logging");
	smq_config_defaults(&cfg);
	cr_assert_eq(load("log_dest file /a.log\nlog_dest file /b.log\n"), -EINVAL);
	cr_assert(strstr(err, ":2: log_dest: a second log file '/b.log'"), "%s", err);
}

Test(core_config, log_type_lines_add_types_and_override_log_level)
{
	cr_assert_eq(load("log_level debug\nlog_type error\nlog_type subscribe\n"), 0, "%s", err);
	cr_assert_eq(smq_config_log_types(&cfg),
		     (1u << SMQ_LOG_ERROR) | (1u << SMQ_LOG_SUBSCRIBE));
	smq_config_defaults(&cfg);
	cr_assert_eq(load("log_type all\n"), 0, "%s", err);
	cr_assert_eq(smq_config_log_types(&cfg), SMQ_LOG_ALL_TYPES);
	smq_config_defaults(&cfg);
	cr_assert_eq(load("log_type information\nlog_type none\n"), 0, "%s", err);
	cr_assert_eq(smq_config_log_types(&cfg), 0);
	smq_config_defaults(&cfg);
	cr_assert_eq(load("log_level info\n"), 0, "%s", err);
	cr_assert_eq(smq_config_log_types(&cfg), 0xfu, "without log_type, log_level decides");
}

Test(core_config, max_topic_alias_differing_per_listener_is_refused)
{
	cr_assert_eq(load("listener 1883\nmax_topic_alias 5\nlistener 1884\nmax_topic_alias 5\n"),
		     0, "%s", err);
	cr_assert_eq(cfg.max_topic_alias, 5);
	smq_config_defaults(&cfg);
	cr_assert_eq(load("listener 1883\nmax_topic_alias 5\nlistener 1884\nmax_topic_alias 7\n"),
		     -EINVAL);
	cr_assert(strstr(err, ":4: max_topic_alias: 7 differs from the 5 given before"), "%s",
		  err);
}

/* A scratch directory for include_dir tests, removed by the caller. */
static char dir[64];

static void dir_file(const char *name, const char *text)
{
	char p[128];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void dir_make(void)
{
	strcpy(dir, "/tmp/smq_confd_XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void dir_remove(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(core_config, include_dir_reads_conf_files_in_mosquitto_order)
{
	char text[128];

	dir_make();
	/* each file appends its name to auto_id_prefix's neighbour: the last
	 * one wins, so order shows in which files set which keys */
	dir_file("b.conf", "clientid_prefixes b\n");
	dir_file("B.conf", "clientid_prefixes B\nmax_qos 1\n");
	dir_file("a.conf", "clientid_prefixes a\n");
	dir_file("A.conf", "clientid_prefixes A\n");
	dir_file("00.conf", "clientid_prefixes 00\nmax_qos 0\n");
	dir_file("01.conf", "clientid_prefixes 01\n");
	dir_file("c.conf.bak", "clientid_prefixes bak\n");
	dir_file(".conf", "clientid_prefixes dot\n");
	snprintf(text, sizeof(text), "port 1999\ninclude_dir %s\n", dir);
	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert_str_eq(cfg.clientid_prefixes, "b", "00 01 A a B b: b.conf is last");
	cr_assert_eq(cfg.max_qos, 1, "B.conf after 00.conf");
	/* and the order itself: an error per file lists them */
	dir_file("b.conf", "x_b 1\n");
	dir_file("B.conf", "x_B 1\n");
	dir_file("a.conf", "x_a 1\n");
	dir_file("A.conf", "x_A 1\n");
	dir_file("00.conf", "x_00 1\n");
	dir_file("01.conf", "x_01 1\n");
	cr_assert_eq(load(text), -EINVAL);
	cr_assert(strstr(err, "x_00'") < strstr(err, "x_01'") && strstr(err, "x_01'") < strstr(err, "x_A'") &&
		  strstr(err, "x_A'") < strstr(err, "x_a'") && strstr(err, "x_a'") < strstr(err, "x_B'") &&
		  strstr(err, "x_B'") < strstr(err, "x_b'"), "%s", err);
	cr_assert(strstr(err, "/00.conf:1: unknown key 'x_00'"), "%s", err);
	dir_remove();
}

Test(core_config, include_dir_errors_name_the_line)
{
	char text[160];

	cr_assert_eq(load("include_dir /nonexistent/conf.d\n"), -EINVAL);
	cr_assert(strstr(err, ":1: include_dir: /nonexistent/conf.d: No such file or directory"),
		  "%s", err);
	dir_make();
	dir_file("x.conf", "include_dir /tmp\n");
	snprintf(text, sizeof(text), "include_dir %s\n", dir);
	cr_assert_eq(load(text), -EINVAL);
	cr_assert(strstr(err, "/x.conf:1: include_dir: only allowed in the main configuration file"),
		  "%s", err);
	dir_remove();
	cr_assert_eq(smq_config_set(&cfg, "include_dir", "/tmp", err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "include_dir: only allowed in a configuration file");
}

Test(core_config, include_dir_holding_the_main_file_is_refused)
{
	char main_path[128];
	FILE *f;

	dir_make();
	snprintf(main_path, sizeof(main_path), "%s/main.conf", dir);
	f = fopen(main_path, "w");
	cr_assert_not_null(f);
	fprintf(f, "include_dir %s\n", dir);
	fclose(f);
	cr_assert_eq(smq_config_load(&cfg, main_path, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "holds the main configuration file"), "%s", err);
	dir_remove();
}

/* The stock Debian 12 /etc/mosquitto/mosquitto.conf (mosquitto 2.0.11),
 * with include_dir pointed at a scratch conf.d. */
static const char debian_conf[] =
	"# Place your local configuration in /etc/mosquitto/conf.d/\n"
	"#\n"
	"# A full description of the configuration file is at\n"
	"# /usr/share/doc/mosquitto/examples/mosquitto.conf.example\n"
	"\n"
	"pid_file /run/mosquitto/mosquitto.pid\n"
	"\n"
	"persistence true\n"
	"persistence_location /var/lib/mosquitto/\n"
	"\n"
	"log_dest file /var/log/mosquitto/mosquitto.log\n"
	"\n"
	"include_dir %s\n";

Test(core_config, debian_stock_file_loads_as_in_mosquitto)
{
	char text[1024];

	dir_make();
	dir_file("local.conf", "listener 1883\nallow_anonymous true\n");
	snprintf(text, sizeof(text), debian_conf, dir);
	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert(cfg.persistence);
	cr_assert_str_eq(cfg.persistence_location, "/var/lib/mosquitto/");
	cr_assert_str_eq(cfg.persistence_file, "shardmq.db");
	cr_assert_eq(cfg.persistence_sync, SMQ_SYNC_COMMIT, "the durable mode by default");
	cr_assert_str_eq(cfg.pid_file, "/run/mosquitto/mosquitto.pid");
	cr_assert_eq(cfg.log_dest, SMQ_LOG_TO_FILE);
	cr_assert_str_eq(cfg.log_file, "/var/log/mosquitto/mosquitto.log");
	cr_assert_eq(cfg.nlisteners, 1, "conf.d was read");
	cr_assert(smq_config_anonymous(&cfg));
	dir_remove();
}

/* The examples of mosquitto.conf(5) for the keys shardmq has. */
Test(core_config, mosquitto_conf_manual_examples_load)
{
	const char *text =
		"persistent_client_expiration 2m\n"
		"persistent_client_expiration 14d\n"
		"persistent_client_expiration 1y\n"
		"log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
		"log_dest file /var/log/mosquitto.log\n"
		"log_dest stdout\n"
		"log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
		"clientid_prefixes secure-\n"
		"auto_id_prefix auto-\n"
		"max_keepalive 65535\n"
		"message_size_limit 0\n"
		"max_queued_messages 1000\n"
		"max_queued_bytes 0\n"
		"set_tcp_nodelay false\n"
		"upgrade_outgoing_qos false\n"
		"allow_zero_length_clientid true\n"
		"pid_file /var/run/mosquitto/mosquitto.pid\n"
		"user mosquitto\n"
		"listener 8883\n"
		"max_connections -1\n"
		"max_topic_alias 10\n"
		"socket_domain ipv4\n"
		"certfile /etc/mosquitto/certs/server.crt\n"
		"keyfile /etc/mosquitto/certs/server.key\n"
		"cafile /etc/mosquitto/ca_certificates/ca.crt\n"
		"require_certificate false\n"
		"tls_version tlsv1.2\n";

	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert_eq(cfg.persistent_client_expiration, 365u * 86400u);
	cr_assert_eq(listeners(), 1, "%s", err);
	cr_assert_eq(smq_config_log_types(&cfg), 0xfu, "error, warning, notice, information");
}

Test(core_config, autosave_interval_alone_selects_periodic_flushing)
{
	cr_assert_eq(load("persistence true\nautosave_interval 60\n"), 0, "%s", err);
	cr_assert_eq(cfg.persistence_sync, SMQ_SYNC_PERIODIC);
	cr_assert_eq(cfg.autosave_interval, 60);
}

Test(core_config, autosave_interval_with_commit_is_refused)
{
	cr_assert_eq(load("persistence true\nautosave_interval 60\npersistence_sync commit\n"),
		     -EINVAL);
	cr_assert(strstr(err, "autosave_interval is set but persistence_sync is commit"), "%s",
		  err);
}

Test(core_config, persistence_is_off_and_commit_by_default)
{
	cr_assert_eq(load("port 1884\n"), 0, "%s", err);
	cr_assert(!cfg.persistence, "off, as in mosquitto");
	cr_assert_eq(cfg.persistence_sync, SMQ_SYNC_COMMIT);
	cr_assert_eq(cfg.autosave_interval, 1800, "mosquitto's default");
}

Test(core_config, listener_0_path_is_a_unix_socket_as_in_mosquitto)
{
	cr_assert_eq(load("listener 1883\nlistener 0 /run/shardmq/mqtt.sock\n"), 0, "%s", err);
	cr_assert_eq(listeners(), 2, "%s", err);
	cr_assert_not(lst[0].unix_sock);
	cr_assert(lst[1].unix_sock);
	cr_assert_str_eq(lst[1].addr, "/run/shardmq/mqtt.sock");
	cr_assert_eq(load("listener 1883 /run/x.sock\n"), -EINVAL);
	cr_assert(strstr(err, "listener 0 /run/x.sock"), "%s", err);
	cr_assert_eq(load("listener 0 /run/y.sock\nsocket_domain ipv4\n"), 0, "%s", err);
	cr_assert_eq(listeners(), -EINVAL);
	cr_assert(strstr(err, "do not apply to a Unix socket"), "%s", err);
}
