/* toolopts.h - what shardmq-pub, shardmq-sub and shardmq-rr share: the
 * connection options (mosquitto_pub/sub/rr-compatible flags), their help
 * text, usage and runtime errors, exit statuses, the -d packet log and the
 * connection setup.
 *
 * A tool calls smq_tool_init() first, lists SMQ_TOOL_SHORTOPTS and
 * SMQ_TOOL_LONGOPTS in its own getopt tables, hands its own options to
 * smq_tool_parse() as a callback, checks its own arguments, then calls
 * smq_tool_check() and smq_tool_connect(). Functions that report return the
 * exit status to end the program with (0: go on).
 *
 * TLS is on when --cafile, --capath or --tls-use-os-certs is given (as
 * mosquitto_pub/sub), or with -L mqtts://; the port then defaults to 8883.
 *
 * -D takes three arguments (four for user-property), read here straight
 * from argv; so option parsing stops at the first non-option argument,
 * which the tools refuse anyway.
 *
 * Threads: none; the program name is process-wide state set once.
 */
#ifndef SMQ_TOOLOPTS_H
#define SMQ_TOOLOPTS_H

#include <getopt.h>
#include <stdbool.h>

#include "cmd/lib/toolprops.h"
#include "net/clientio.h"
#include "net/tls.h"

/* Exit statuses every tool documents in its --help. */
enum {
	SMQ_TOOL_EXIT_USAGE = 1,	/* bad arguments */
	SMQ_TOOL_EXIT_CONN = 2,		/* could not connect, or the connection broke */
	SMQ_TOOL_EXIT_PROTO = 3,	/* the broker refused (CONNACK, PUBACK, SUBACK...) or
					 * broke the protocol */
};

/* getopt values of the long-only options (past any character). */
enum {
	SMQ_TOOL_OPT_HELP = 256,
	SMQ_TOOL_OPT_VERSION,		/* handled here: prints "PROG version V", exits 0 */
	SMQ_TOOL_OPT_WILL_TOPIC,
	SMQ_TOOL_OPT_WILL_PAYLOAD,
	SMQ_TOOL_OPT_WILL_QOS,
	SMQ_TOOL_OPT_WILL_RETAIN,
	SMQ_TOOL_OPT_CAFILE,
	SMQ_TOOL_OPT_CAPATH,
	SMQ_TOOL_OPT_CERT,
	SMQ_TOOL_OPT_KEY,
	SMQ_TOOL_OPT_INSECURE,
	SMQ_TOOL_OPT_TLS_VERSION,
	SMQ_TOOL_OPT_TLS_OS_CERTS,
	SMQ_TOOL_OPT_QUIET,
	SMQ_TOOL_OPT_UNIX,
	SMQ_TOOL_OPT_NODELAY,
	SMQ_TOOL_OPT_TOOL,		/* first value free for a tool's long options */
};

/* The shared short options, to put first in a tool's optstring. */
#define SMQ_TOOL_SHORTOPTS "h:p:V:i:I:u:P:k:cx:A:dD:L:"

/* The shared long options, to put in a tool's struct option table. --help
 * is listed here but handled by the tool (it prints the tool's usage). */
#define SMQ_TOOL_LONGOPTS \
	{ "host", required_argument, NULL, 'h' }, \
	{ "port", required_argument, NULL, 'p' }, \
	{ "protocol-version", required_argument, NULL, 'V' }, \
	{ "id", required_argument, NULL, 'i' }, \
	{ "id-prefix", required_argument, NULL, 'I' }, \
	{ "debug", no_argument, NULL, 'd' }, \
	{ "property", required_argument, NULL, 'D' }, \
	{ "url", required_argument, NULL, 'L' }, \
	{ "quiet", no_argument, NULL, SMQ_TOOL_OPT_QUIET }, \
	{ "unix", required_argument, NULL, SMQ_TOOL_OPT_UNIX }, \
	{ "nodelay", no_argument, NULL, SMQ_TOOL_OPT_NODELAY }, \
	{ "username", required_argument, NULL, 'u' }, \
	{ "pw", required_argument, NULL, 'P' }, \
	{ "keepalive", required_argument, NULL, 'k' }, \
	{ "disable-clean-session", no_argument, NULL, 'c' }, \
	{ "will-topic", required_argument, NULL, SMQ_TOOL_OPT_WILL_TOPIC }, \
	{ "will-payload", required_argument, NULL, SMQ_TOOL_OPT_WILL_PAYLOAD }, \
	{ "will-qos", required_argument, NULL, SMQ_TOOL_OPT_WILL_QOS }, \
	{ "will-retain", no_argument, NULL, SMQ_TOOL_OPT_WILL_RETAIN }, \
	{ "cafile", required_argument, NULL, SMQ_TOOL_OPT_CAFILE }, \
	{ "capath", required_argument, NULL, SMQ_TOOL_OPT_CAPATH }, \
	{ "cert", required_argument, NULL, SMQ_TOOL_OPT_CERT }, \
	{ "key", required_argument, NULL, SMQ_TOOL_OPT_KEY }, \
	{ "insecure", no_argument, NULL, SMQ_TOOL_OPT_INSECURE }, \
	{ "tls-version", required_argument, NULL, SMQ_TOOL_OPT_TLS_VERSION }, \
	{ "tls-use-os-certs", no_argument, NULL, SMQ_TOOL_OPT_TLS_OS_CERTS }, \
	{ "version", no_argument, NULL, SMQ_TOOL_OPT_VERSION }, \
	{ "help", no_argument, NULL, SMQ_TOOL_OPT_HELP }

/* Pieces of the --help text, in the order they appear. The first takes the
 * program name (%s) and leaves its second line open for the tool's flags. */
#define SMQ_TOOL_USAGE_CONN \
	"Usage: %s {[-h host] [-p port] [--unix path] [-u user] [-P password] | -L url}\n" \
	"                   [-V 31|311|5] [-i id | -I id-prefix] [-k keepalive] [-c]\n" \
	"                   [-x session-expiry] [-A bind-address] [--nodelay] [-d] [--quiet]\n" \
	"                   [-D packet property value...]"
#define SMQ_TOOL_USAGE_WILL \
	"                   [--will-topic t [--will-payload p] [--will-qos q] [--will-retain]]\n"
#define SMQ_TOOL_USAGE_TLS \
	"                   [{--cafile f | --capath d | --tls-use-os-certs} [--cert f --key f]\n" \
	"                    [--insecure] [--tls-version tlsv1.2|tlsv1.3]]\n"
#define SMQ_TOOL_HELP_CONN \
	" -h, --host       broker host (localhost)       -p, --port     port (1883; 8883 with TLS)\n" \
	" -V, --protocol-version 31, 311 or 5 (311)      -i, --id       client id\n" \
	" -u, --username   user name                     -P, --pw       password\n" \
	" -k, --keepalive  seconds, 0 = off (60)         -c, --disable-clean-session\n" \
	" -x               session expiry, seconds (5.0; -1 = never, the default with -c)\n" \
	" -I, --id-prefix  client id: this prefix and the process id\n" \
	" -L, --url        mqtt(s)://[user[:password]@]host[:port]/topic\n" \
	"     --unix       connect to this Unix socket instead of host:port\n" \
	" -A               bind the socket to this local address\n" \
	"     --nodelay    no Nagle delay (always the case: TCP_NODELAY is set)\n" \
	" -d, --debug      log every packet sent and received on stderr\n" \
	"     --quiet      print no error message (the exit status still tells)\n" \
	" -D, --property   5.0 property: -D PACKET NAME VALUE (user-property: KEY VALUE),\n" \
	"                  PACKET one of connect publish subscribe unsubscribe disconnect will\n"
#define SMQ_TOOL_HELP_TLS \
	"     --cafile     PEM file of CAs to verify the broker with: turns TLS on (port 8883)\n" \
	"     --capath     directory of PEM CAs (TLS on)  --tls-use-os-certs  the system CAs\n" \
	"     --cert, --key  client certificate and its private key (PEM)\n" \
	"     --insecure   do not check the broker's host name against its certificate\n" \
	"     --tls-version  tlsv1.2 or tlsv1.3 only (default: either, 1.3 preferred)\n"
#define SMQ_TOOL_HELP_WILL \
	"     --will-topic, --will-payload, --will-qos, --will-retain: the will message\n" \
	"     --help       this text          --version  the version\n"

/* What the shared options set. opts points into the struct (password,
 * will, client id): do not copy it once smq_tool_parse() has run. */
struct smq_tool_conn {
	const char *host;
	unsigned port;
	struct smq_client_opts opts;
	struct smq_client_will will;
	struct smq_str password;
	bool expiry_set;		/* -x given: -c does not change it */
	bool port_set;			/* -p given: TLS does not change it */
	bool tls;			/* TLS on (--cafile, --capath, --tls-use-os-certs) */
	struct smq_tls_opts tls_opts;	/* server_name is set by smq_tool_connect() */
	char id_buf[64];		/* "PROG-PID" when no -i, "PREFIXPID" with -I */
	const char *id_prefix;		/* -I */
	const char *bind_addr;		/* -A */
	const char *unix_path;		/* --unix */
	bool debug;			/* -d */
	bool url_tls;			/* -L mqtts:// */
	char *url_buf;			/* -L, cut into host, user, password, topic */
	const char *url_topic;		/* -L's topic, for the tool to use; NULL: none */
	struct smq_tool_props props;	/* -D */
};

/* A tool's own options: 0, -1 (not one of them: "unknown option") or an
 * exit status (from smq_tool_bad()). @ctx is smq_tool_parse()'s. */
typedef int (*smq_tool_opt_fn)(void *ctx, int opt, const char *arg);

/* Name the program @prog (kept, not copied: a literal) for every message,
 * and fill @c with the defaults: localhost:1883, MQTT 3.1.1, clean, keepalive
 * 60, no will. Call once, before anything else here. */
void smq_tool_init(struct smq_tool_conn *c, const char *prog);

/* Read all of @fd (a message for -f or -s) into a new buffer (*@out, the
 * caller frees it, *@len bytes): 0 or -errno. */
int smq_tool_slurp(int fd, uint8_t **out, size_t *len);

/* Free what parsing allocated (the -L copy, -D user properties). */
void smq_tool_fini(struct smq_tool_conn *c);

/* Print "PROG: message" and the hint to use --help on stderr; returns
 * SMQ_TOOL_EXIT_USAGE. Usage errors are printed even with --quiet. */
int smq_tool_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "PROG: message" on stderr, unless --quiet. */
void smq_tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "Client ID " (not when @h is NULL) and the message on stderr when
 * -d is on: a line as mosquitto's clients print with -d. */
void smq_tool_debug(const struct smq_clientio *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Parse @s as a decimal number 0..@max (no sign, nothing after it). */
bool smq_tool_parse_uint(const char *s, unsigned long max, unsigned long *out);

/* Read every option of @argv: the shared ones into @c, the others through
 * @tool_opt. Refuses unknown options and non-option arguments. Returns 0 or
 * an exit status. The cross-checks are left to smq_tool_check(), so that a
 * tool can report its own missing arguments first. */
int smq_tool_parse(struct smq_tool_conn *c, int argc, char **argv, const char *shortopts,
		   const struct option *longopts, smq_tool_opt_fn tool_opt, void *ctx);

/* Cross-check the shared options once all are read, and settle what
 * depends on several (session expiry, the default client id). Returns 0 or
 * SMQ_TOOL_EXIT_USAGE. */
int smq_tool_check(struct smq_tool_conn *c);

/* Print "PROG: @what: description of @err" on stderr (unless --quiet) and
 * return the exit status for @err (a -errno or negated reason code, see
 * net/clientio.h). When TLS failed on the handle of smq_tool_connect(), the
 * description is TLS's ("TLS: certificate verify failed: ..."); when the
 * host name did not resolve, "Unknown host NAME: " and the resolver's. */
int smq_tool_fail(const char *what, int err);

/* Connect to the broker and wait for CONNACK (10 s at most), over TLS if
 * asked (a bad TLS option or file is a usage error, status 1), from -A's
 * address or over --unix, logging packets with -d. Returns 0 with *@out
 * the connected handle (the caller frees it), or the exit status after
 * saying what failed. @c must stay alive as long as the handle. */
int smq_tool_connect(const struct smq_tool_conn *c, struct smq_clientio **out);

/* Connect @h again (after a lost connection): smq_clientio_connect() with
 * the same 10 s bound; 0 or the error, said with smq_tool_fail(). */
int smq_tool_reconnect(struct smq_clientio *h);

/* Send DISCONNECT with the -D disconnect properties, wait for it to be
 * written (10 s at most) and close: 0 or the exit status. */
int smq_tool_disconnect(const struct smq_tool_conn *c, struct smq_clientio *h);

#endif
