/* toolopts.h - what shardmq-pub and shardmq-sub share: the connection
 * options (mosquitto_pub/sub-compatible flags), their help text, usage
 * errors, exit statuses and the connection setup.
 *
 * A tool calls smq_tool_init() first, lists SMQ_TOOL_SHORTOPTS and
 * SMQ_TOOL_LONGOPTS in its own getopt tables, hands its own options to
 * smq_tool_parse() as a callback, checks its own arguments, then calls
 * smq_tool_check() and smq_tool_connect(). Functions that report return the
 * exit status to end the program with (0: go on).
 *
 * TLS is on when --cafile, --capath or --tls-use-os-certs is given (as
 * mosquitto_pub/sub); the port then defaults to 8883.
 *
 * Threads: none; the program name is process-wide state set once.
 */
#ifndef SMQ_TOOLOPTS_H
#define SMQ_TOOLOPTS_H

#include <getopt.h>
#include <stdbool.h>

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
};

/* The shared short options, to put first in a tool's optstring. */
#define SMQ_TOOL_SHORTOPTS "h:p:V:i:u:P:k:cx:"

/* The shared long options, to put in a tool's struct option table. --help
 * is listed here but handled by the tool (it prints the tool's usage). */
#define SMQ_TOOL_LONGOPTS \
	{ "host", required_argument, NULL, 'h' }, \
	{ "port", required_argument, NULL, 'p' }, \
	{ "protocol-version", required_argument, NULL, 'V' }, \
	{ "id", required_argument, NULL, 'i' }, \
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
	"Usage: %s [-h host] [-p port] [-V 31|311|5] [-i id] [-u user] [-P password]\n" \
	"                   [-k keepalive] [-c] [-x session-expiry]"
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
	" -x               session expiry, seconds (5.0; -1 = never, the default with -c)\n"
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
	char id_buf[64];		/* "PROG-PID" when no -i */
};

/* A tool's own options: 0, -1 (not one of them: "unknown option") or an
 * exit status (from smq_tool_bad()). @ctx is smq_tool_parse()'s. */
typedef int (*smq_tool_opt_fn)(void *ctx, int opt, const char *arg);

/* Name the program @prog (kept, not copied: a literal) for every message,
 * and fill @c with the defaults: localhost:1883, MQTT 3.1.1, clean, keepalive
 * 60, no will. Call once, before anything else here. */
void smq_tool_init(struct smq_tool_conn *c, const char *prog);

/* Print "PROG: message" and the hint to use --help on stderr; returns
 * SMQ_TOOL_EXIT_USAGE. */
int smq_tool_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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

/* Print "PROG: @what: description of @err" on stderr and return the exit
 * status for @err (a -errno or negated reason code, see net/clientio.h).
 * When TLS failed on the handle of smq_tool_connect(), the description is
 * TLS's ("TLS: certificate verify failed: ..."). */
int smq_tool_fail(const char *what, int err);

/* Connect to the broker and wait for CONNACK (10 s at most), over TLS if
 * asked (a bad TLS option or file is a usage error, status 1). Returns 0
 * with *@out the connected handle (the caller frees it), or the exit status
 * after saying what failed. @c must stay alive as long as the handle. */
int smq_tool_connect(const struct smq_tool_conn *c, struct smq_clientio **out);

#endif
