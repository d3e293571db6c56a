/* config.h - the broker's configuration: defaults, the config file parser and
 * command-line overrides.
 *
 * The file is a list of "key value" lines: the key is the first word, the
 * value is the rest of the line with blanks trimmed at both ends. Lines whose
 * first non-blank character is '#' are comments; blank lines are ignored. A
 * '#' after a value is part of the value (as in mosquitto), so
 * "port 1883 # x" is an error, not a comment. Keys are case-sensitive. A key
 * given twice is allowed: the last one wins (so a file can override an
 * included default and the command line can override the file).
 *
 * Value kinds:
 *   bool     true | false
 *   count    a decimal integer within the key's range (below)
 *   size     bytes, optionally with a suffix k/K, m/M, g/G (x1024, x1024^2,
 *            x1024^3): "64k" = 65536
 *   seconds  a decimal integer, optionally with a suffix s, h, d, w, m or y
 *            (seconds, hours, days, weeks, months of 30 days, years of 365
 *            days: mosquitto's units, so "2m" is two months, not minutes)
 *
 * mosquitto.conf compatibility: every key of mosquitto 2.0's broker is
 * either accepted with mosquitto's meaning (below) or refused with a line
 * saying it is not supported (plugins, bridges, http_dir, PSK,
 * persistence, ...): a setting is never ignored. "include_dir DIR" (main
 * file only) reads DIR's files ending ".conf" in mosquitto's order (by
 * letter, case-insensitive, an upper case letter before its lower case).
 *
 * Keys (default; range):
 *   port N                        1883; 0..65535 (0: the kernel picks one):
 *                                 the default listener's port
 *   bind_address ADDR             the default listener's address (default:
 *                                 loopback, 127.0.0.1 and ::1)
 *   listener PORT [ADDR]          one more listener (up to SMQ_CONFIG_MAX_LISTENERS);
 *                                 without ADDR on every interface, IPv4 and
 *                                 IPv6. The listener keys below that follow
 *                                 the line belong to that listener.
 *   acl_file PATH                 "" (none); mosquitto's ACL file format
 *   per_listener_settings false   only false (mosquitto's default) is supported
 *
 * Listener keys (before the first listener line they configure the default
 * listener, which exists when no listener line is given or port is set):
 *   protocol mqtt|websockets      mqtt; websockets: MQTT over WebSocket (ws, or wss
 *                                 with the TLS keys), any path, subprotocol mqtt
 *                                 or mqttv3.1 (net/ws.h)
 *   socket_domain ipv4|ipv6       both
 *   bind_interface IFNAME         none (SO_BINDTODEVICE)
 *   max_connections N             -1 (unlimited); in a listener block the
 *                                 listener's own limit, before any listener
 *                                 line the broker-wide limit (see below)
 *   certfile, keyfile PATH        TLS on this listener when both are set
 *   cafile PATH, capath DIR       CAs that client certificates must chain to
 *   require_certificate BOOL      false: ask for no client certificate
 *   use_identity_as_username BOOL false: the certificate's CN is the user name
 *   tls_version tlsv1.2|tlsv1.3   both (1.3 preferred); the lowest allowed
 *   ciphers LIST, ciphers_tls1.3 LIST   OpenSSL-style cipher lists
 *   shards N                      0 (= online CPUs); 0..SMQ_CONFIG_MAX_SHARDS
 *   pin_cpus false|true|LIST      false; true: shard i on CPU i; LIST like
 *                                 "0,2,4-7": shard i on the i-th listed CPU
 *                                 (wrapping); CPU ids 0..SMQ_CONFIG_MAX_CPU_ID,
 *                                 at most SMQ_CONFIG_MAX_CPUS entries
 *   max_connections N             100000; -1 (unlimited) or 0..2^31-1 (broker-wide
 *                                 when given before any listener line)
 *   max_packet_size SIZE          1048576; 0 (= protocol maximum,
 *                                 SMQ_CONFIG_PROTOCOL_MAX_PACKET) or 2..that
 *   max_inflight_messages N       20; 0..65535 (0: no maximum, i.e. 65535)
 *   max_queued_messages N         1000; 0..2^31-1 (per session, beyond inflight;
 *                                 0: no maximum, as in mosquitto)
 *   max_queued_bytes SIZE         67108864; 0..1T (0: no byte bound, the
 *                                 count bound still holds)
 *   max_keepalive N               65535; 0..65535 (seconds)
 *   allow_anonymous BOOL          true without listener lines, false with them
 *   allow_zero_length_clientid BOOL  true
 *   queue_qos0_messages BOOL      false (queue QoS 0 for offline sessions)
 *   retain_available BOOL         true
 *   max_qos N                     2; 0..2
 *   client_max_write_buffer SIZE  1048576; 1..1T (queued output bytes past
 *                                 which QoS 0 to that client is dropped)
 *   persistent_client_expiration SECONDS  0 (never); 0..2^32-1
 *   log_level LEVEL               notice; error|warning|notice|info|debug
 *   password_file PATH            "" (none); 1..4095 characters; mosquitto_passwd format
 *   max_retained_messages N       100000; 0..2^31-1
 *   message_size_limit SIZE       0 (none); 0..268435455: largest PUBLISH payload
 *                                 accepted (larger: acknowledged, not delivered)
 *   upgrade_outgoing_qos BOOL     false: deliver at the subscription's QoS
 *   set_tcp_nodelay BOOL          true (mosquitto: false): TCP_NODELAY on clients
 *   clientid_prefixes STR         "" (any): only client ids starting with STR
 *   auto_id_prefix STR            "auto-": assigned client ids start with it
 *   max_topic_alias N             10; 0..65535 (a listener key in mosquitto; one
 *                                 value for every listener here)
 *   allow_duplicate_messages BOOL true; either value: one copy per client
 *   check_retain_source false     only false (the publisher of a retained
 *                                 message is not checked again)
 *   sys_interval N                10; 0..2^31-1: seconds between $SYS/broker/... updates
 *                                 (0: no $SYS topics)
 *   memory_limit 0, max_inflight_bytes 0   only 0 (not supported)
 *   websockets_headers_size SIZE  0 (= 4096; mosquitto's default is 1024); 256..65536:
 *                                 the largest WebSocket upgrade request (431 past it)
 *   websockets_log_level 0        only 0 (a libwebsockets log mask in mosquitto)
 *   persistence BOOL              false; true: retained messages and persistent
 *                                 sessions survive restarts and crashes
 *   persistence_location DIR      "" (the working directory, as mosquitto)
 *   persistence_file NAME         shardmq.db: the store, a directory in
 *                                 persistence_location (one LMDB environment per shard)
 *   persistence_sync commit|periodic   commit: acknowledge stored messages after
 *                                 they reach the disk; periodic: after they reach the
 *                                 operating system, flushing every autosave_interval
 *   autosave_interval N           1800; 0..2^31-1 seconds between flushes in periodic
 *                                 mode (0: only at exit and SIGUSR1). Giving it without
 *                                 persistence_sync selects periodic; with commit it is
 *                                 an error
 *   retry_interval, store_clean_interval N   obsolete in mosquitto 2: a warning
 *   log_dest DEST                 stderr; stderr|stdout|syslog|none|file PATH, may
 *                                 repeat (the first line replaces the default)
 *   log_type TYPE                 error|warning|notice|information|debug|subscribe|
 *                                 unsubscribe|websockets|all|none, may repeat;
 *                                 without it log_level decides
 *   log_facility N                0..7: syslog facility local0..local7 (default daemon)
 *   log_timestamp BOOL            true
 *   log_timestamp_format FMT      "" (ISO 8601 UTC with ms); else strftime(3), local time
 *   connection_messages BOOL      true: log each connect and disconnect
 *   pid_file PATH                 "" (none)
 *   user NAME                     "" (mosquitto: "mosquitto"): when started as root,
 *                                 become NAME after binding the listeners
 *   metrics_listener PORT [ADDR]  none; Prometheus metrics over HTTP at
 *                                 http://ADDR:PORT/metrics (ADDR default 127.0.0.1:
 *                                 loopback only); 0..65535 (0: the kernel picks);
 *                                 at most one such line
 *
 * Errors go to a caller buffer as one line without a newline:
 *   "FILE:LINE: unknown key 'pot'"
 *   "FILE:LINE: max_inflight_messages: expected a number 1..65535, got 'abc'"
 *   "FILE: No such file or directory"
 * and smq_config_set() messages have no "FILE:LINE: " prefix.
 *
 * Strings are stored inline, so a struct smq_config can be copied by
 * assignment and shared read-only between threads once loaded. No threads,
 * no I/O except reading the file in smq_config_load().
 */
#ifndef SMQ_CONFIG_H
#define SMQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"

#define SMQ_CONFIG_MAX_SHARDS 64	/* shard masks are 64-bit (core/interest.h) */
#define SMQ_CONFIG_MAX_CPUS 256		/* entries in a pin_cpus list */
#define SMQ_CONFIG_MAX_CPU_ID 4095
#define SMQ_CONFIG_ADDR_MAX 256		/* including the NUL */
#define SMQ_CONFIG_PATH_MAX 4096	/* including the NUL */
/* The largest MQTT packet: 1 byte type + 4 bytes length + 268435455. */
#define SMQ_CONFIG_PROTOCOL_MAX_PACKET 268435460u
#define SMQ_CONFIG_MAX_LISTENERS 16
#define SMQ_CONFIG_CIPHERS_MAX 512	/* including the NUL */
#define SMQ_CONFIG_ID_MAX 32		/* client id prefixes, including the NUL */

enum smq_listener_proto { SMQ_PROTO_MQTT, SMQ_PROTO_WEBSOCKETS };
enum smq_socket_domain { SMQ_DOMAIN_ANY, SMQ_DOMAIN_IPV4, SMQ_DOMAIN_IPV6 };

/* One listener: where it listens and what it asks of clients. */
struct smq_listener_cfg {
	int port;
	char addr[SMQ_CONFIG_ADDR_MAX];		/* "": every interface; the path of a
						 * Unix socket when unix_sock */
	bool unix_sock;				/* "listener 0 /path": a Unix socket */
	int protocol;				/* enum smq_listener_proto */
	int socket_domain;			/* enum smq_socket_domain */
	char bind_interface[16];		/* "": any */
	int max_connections;			/* -1: no per-listener limit */
	char certfile[SMQ_CONFIG_PATH_MAX];
	char keyfile[SMQ_CONFIG_PATH_MAX];
	char cafile[SMQ_CONFIG_PATH_MAX];
	char capath[SMQ_CONFIG_PATH_MAX];
	bool require_certificate;
	bool use_identity_as_username;
	char tls_version[16];			/* "": 1.2 and 1.3 */
	char ciphers[SMQ_CONFIG_CIPHERS_MAX];
	char ciphers_tls13[SMQ_CONFIG_CIPHERS_MAX];
	const char *tls_key;			/* first TLS key set on it, for errors */
};

struct smq_config {
	int port;
	char bind_address[SMQ_CONFIG_ADDR_MAX];
	int shards;				/* 0: one per online CPU */
	bool pin_cpus;
	int ncpus;				/* 0 with pin_cpus: shard i -> CPU i */
	int cpus[SMQ_CONFIG_MAX_CPUS];		/* the pin_cpus list, in order */
	int max_connections;			/* -1: unlimited */
	uint64_t max_packet_size;		/* 0: protocol maximum */
	int max_inflight_messages;
	int max_queued_messages;
	uint64_t max_queued_bytes;		/* 0: no byte bound */
	int max_keepalive;
	bool allow_anonymous;
	bool allow_zero_length_clientid;
	bool queue_qos0_messages;
	bool retain_available;
	int max_qos;
	uint64_t client_max_write_buffer;
	uint64_t persistent_client_expiration;	/* seconds; 0: never */
	enum smq_log_level log_level;
	char password_file[SMQ_CONFIG_PATH_MAX];	/* "": none */
	char acl_file[SMQ_CONFIG_PATH_MAX];		/* "": none */
	int max_retained_messages;
	int sys_interval;			/* seconds; 0: no $SYS */
	uint64_t message_size_limit;		/* 0: none */
	uint64_t websockets_headers_size;	/* 0: SMQ_WS_HEADERS_DEFAULT (net/ws.h) */
	bool upgrade_outgoing_qos;
	bool set_tcp_nodelay;
	bool allow_duplicate_messages;
	bool connection_messages;
	bool log_timestamp;
	char clientid_prefixes[SMQ_CONFIG_ID_MAX];	/* "": any id */
	char auto_id_prefix[SMQ_CONFIG_ID_MAX];
	int max_topic_alias;
	unsigned log_dest;			/* SMQ_LOG_TO_* bits */
	unsigned log_types;			/* 1u << SMQ_LOG_*: with log_types_set */
	bool log_dest_set, log_types_set, alias_set;
	int log_facility;			/* -1: daemon; 0..7: localN */
	char log_file[SMQ_CONFIG_PATH_MAX];	/* log_dest file PATH */
	char log_timestamp_format[128];		/* "": the default format */
	char pid_file[SMQ_CONFIG_PATH_MAX];	/* "": none */
	char user[64];				/* "": stay who we are */
	bool persistence;
	char persistence_location[SMQ_CONFIG_PATH_MAX];	/* "": the working directory */
	char persistence_file[256];		/* the store directory's name */
	int persistence_sync;			/* SMQ_SYNC_*, resolved by smq_config_load */
	int autosave_interval;			/* seconds; 0: no periodic flush */
	bool sync_set, autosave_set;
	int metrics_port;			/* metrics_listener; -1: none */
	char metrics_addr[SMQ_CONFIG_ADDR_MAX];	/* its address: 127.0.0.1 unless given */

	/* Listeners as written; smq_config_listeners() gives the ones to open. */
	bool port_set, bind_set, anonymous_set;	/* given in the file or command line */
	struct smq_listener_cfg deflt;		/* port + bind_address + keys before any listener */
	int nlisteners;
	struct smq_listener_cfg listeners[SMQ_CONFIG_MAX_LISTENERS];
};

/* persistence_sync */
enum { SMQ_SYNC_COMMIT = 0, SMQ_SYNC_PERIODIC = 1 };

/* The listeners to open, with mosquitto 2's rules: the listener lines; plus
 * the default listener (port, bind_address and the listener keys given
 * before any listener line) when port was set or no listener line exists.
 * The default listener without bind_address is loopback only: 127.0.0.1 and
 * ::1 (two entries). Returns the number written to @out (at most @max), or
 * -EINVAL with a sentence in @err: listener keys given before any listener
 * line when there is no default listener (they would be ignored), a TLS
 * listener missing its certfile or keyfile, an unsupported protocol. */
int smq_config_listeners(const struct smq_config *c, struct smq_listener_cfg *out, int max,
			 char *err, size_t errlen);

/* allow_anonymous as in force: the value given, or by default true when no
 * listener line is configured and false once one is (mosquitto 2). */
bool smq_config_anonymous(const struct smq_config *c);

/* TLS is configured on @l (certfile or keyfile set). */
bool smq_config_listener_tls(const struct smq_listener_cfg *l);

/* Fill @c with the defaults listed above. Cannot fail. */
void smq_config_defaults(struct smq_config *c);

/* Read @path (and the files its include_dir lines name) and apply each
 * line to @c (which should hold the defaults or an earlier configuration:
 * keys the file does not name keep their value). Every line is tried, so
 * that one run reports every bad line. Returns 0; -EINVAL when any line
 * was bad, with @err = one "FILE:LINE: what" per bad line, separated by
 * '\n' (no final newline; "... and N more" when @errlen is too small); or
 * -errno if @path cannot be opened or read, with @err = "FILE: strerror".
 * On error @c holds every good line applied. Obsolete keys that mosquitto
 * accepts with a warning are logged with smq_warn() as "FILE:LINE: ...".
 * @err may be NULL; it is always NUL-terminated when @errlen > 0. */
int smq_config_load(struct smq_config *c, const char *path, char *err, size_t errlen);

/* Apply one key/value pair (a command-line override). @value is trimmed.
 * Returns 0 or -EINVAL with @err = "KEY: what is wrong" (or "unknown key
 * 'KEY'"). On error @c is unchanged. */
int smq_config_set(struct smq_config *c, const char *key, const char *value, char *err,
		   size_t errlen);

/* The log type mask in force (1u << SMQ_LOG_*): log_type lines when given,
 * else every level up to log_level (subscribe lines with debug). */
unsigned smq_config_log_types(const struct smq_config *c);

/* Release what @c owns. Nothing today (strings are inline); call it anyway
 * so that a future heap field needs no caller change. */
void smq_config_fini(struct smq_config *c);

#endif
