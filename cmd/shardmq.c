/* shardmq.c - the broker program.
 *
 *	shardmq [-c FILE] [-p PORT] [--bind ADDR] [--shards N] [--pin] [-v]
 *	shardmq --test-config -c FILE
 *	shardmq --version
 *
 * Loads the config (defaults, then the file, then command-line overrides),
 * sets up logging as the config says, starts the shards (which bind the
 * listeners), writes the pid file, drops root for the configured user, and
 * waits for SIGINT/SIGTERM, then stops cleanly: every connection closed,
 * every thread joined, all memory freed, the pid file removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/auth.h"
#include "core/config.h"
#include "core/log.h"
#include "core/version.h"
#include "net/tls.h"
#include "shard/broker.h"

#include <wolfssl/options.h>
#include <wolfssl/version.h>

/* jemalloc reads this at start (the MALLOC_CONF environment variable still
 * overrides it). Memory taken by a burst (10,000 connections, a flood
 * queued for slow subscribers) should go back to the system once the burst
 * is over, but jemalloc purges unused pages only during allocator calls of
 * the same arena, and an idle shard makes none: its peak stayed resident
 * for good. Background threads purge instead, after a second of disuse.
 * Without jemalloc (sanitizer builds) the symbol is unused. */
const char *malloc_conf = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shardmq [-c FILE] [-d] [-p PORT] [--bind ADDR] [--shards N] [--pin] [-v]\n"
		"       shardmq --test-config -c FILE | --version | --help\n"
		"\n"
		"  -c, --config FILE  read settings from FILE (mosquitto.conf lines)\n"
		"      --test-config  check the settings (and the files they name), then exit:\n"
		"                     0 if they are good, 1 with every problem on stderr\n"
		"  -p, --port PORT    listen on PORT (default 1883)\n"
		"  -d, --daemon       run in the background once listening (the start-up\n"
		"                     status is still the exit status of this command)\n"
		"      --bind ADDR    listen on ADDR (default: loopback, 127.0.0.1 and ::1)\n"
		"      --shards N     shard threads (default: one per online CPU)\n"
		"      --pin          pin shard i to CPU i (config: pin_cpus)\n"
		"  -v, --verbose      log at info level (twice: debug)\n"
		"  -h, --help         this text\n"
		"      --version      the version\n");
}

/* Apply one command-line override; exits with a message on a bad value. */
static void set_or_die(struct smq_config *cfg, const char *key, const char *value)
{
	char err[512];

	if (smq_config_set(cfg, key, value, err, sizeof(err))) {
		fprintf(stderr, "shardmq: %s\n", err);
		exit(1);
	}
}

struct override {
	const char *key;
	const char *value;
};

static bool test_config;
static bool daemonize;

static int parse_args(int argc, char **argv, const char **cfg_path, struct override *ov,
		      int *nov, int *verbose)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "port", required_argument, NULL, 'p' },
		{ "bind", required_argument, NULL, 'b' },
		{ "shards", required_argument, NULL, 's' },
		{ "pin", no_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "test-config", no_argument, NULL, 'T' },
		{ "daemon", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:dp:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			*cfg_path = optarg;
			break;
		case 'p':
			ov[(*nov)++] = (struct override){ "port", optarg };
			break;
		case 'b':
			ov[(*nov)++] = (struct override){ "bind_address", optarg };
			break;
		case 's':
			ov[(*nov)++] = (struct override){ "shards", optarg };
			break;
		case 'P':
			ov[(*nov)++] = (struct override){ "pin_cpus", "true" };
			break;
		case 'v':
			(*verbose)++;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("shardmq version %s\n", SMQ_VERSION);
			exit(0);
		case 'T':
			test_config = true;
			break;
		case 'd':
			daemonize = true;
			break;
		default:
			usage(stderr);
			return -EINVAL;
		}
		if (*nov >= 16)
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr, "shardmq: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* Some listener takes the user name from client certificates. */
static bool identity_listener(struct smq_broker *b)
{
	const struct smq_listener_cfg *l;

	for (unsigned i = 0; (l = smq_broker_listener_cfg(b, i)); i++)
		if (l->use_identity_as_username)
			return true;
	return false;
}

/* One line naming every listener ("shardmq listening on" is what scripts
 * wait for), then what is allowed in. */
static void log_listening(struct smq_broker *b, const struct smq_config *cfg)
{
	char line[2048], name[300];
	size_t off = 0;
	bool tls;

	line[0] = '\0';
	for (unsigned i = 0; smq_broker_listener_info(b, i, name, sizeof(name), &tls) >= 0; i++) {
		bool ws = smq_broker_listener_cfg(b, i)->protocol == SMQ_PROTO_WEBSOCKETS;

		off += (size_t)snprintf(line + off, off < sizeof(line) ? sizeof(line) - off : 0,
					"%s%s (%s)", i ? ", " : "", name,
					ws ? (tls ? "wss" : "ws") : (tls ? "mqtts" : "mqtt"));
	}
	smq_notice("shardmq listening on %s with %u shard%s%s", line, smq_broker_shards(b),
		   smq_broker_shards(b) == 1 ? "" : "s", cfg->pin_cpus ? " (pinned)" : "");
	for (unsigned i = 0; smq_broker_listener_info(b, i, name, sizeof(name), &tls) >= 0; i++)
		if (tls)
			smq_notice("listener %s: TLS in user space (wolfSSL %s)%s", name,
				   LIBWOLFSSL_VERSION_STRING,
				   smq_tls_ktls_available() ? ""
				   : "; kernel TLS is off: this wolfSSL build cannot hand its keys "
				     "to the kernel");
	if (!cfg->nlisteners && !cfg->bind_set)
		smq_notice("no listener configured: listening on loopback only (add 'listener 1883' "
			   "to listen on every interface)");
	if (smq_config_anonymous(cfg))
		smq_notice("anonymous clients are allowed (set allow_anonymous false to refuse them)");
	else if (!cfg->password_file[0] && !identity_listener(b))
		smq_warn("allow_anonymous is false and there is no password_file: every CONNECT will "
			 "be refused (add password_file, or use_identity_as_username on a TLS listener)");
}

static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	sigaddset(set, SIGUSR2);
}

/* Logging as @cfg says: destinations, timestamps, the types of line (all
 * up to info or debug with -v/-vv). 0 or -errno with @err. */
static int log_setup(const struct smq_config *cfg, int verbose, char *err, size_t errlen)
{
	struct smq_log_opts o = {
		.dest = cfg->log_dest,
		.file = cfg->log_file,
		.facility = cfg->log_facility,
		.timestamp = cfg->log_timestamp,
		.timestamp_format = cfg->log_timestamp_format,
	};
	int ret = smq_log_setup(&o, err, errlen);

	if (ret)
		return ret;
	if (verbose)
		smq_log_set_level(verbose > 1 ? SMQ_LOG_DEBUG : SMQ_LOG_INFO);
	else
		smq_log_set_types(smq_config_log_types(cfg));
	return 0;
}

/* SIGHUP: read the config file again and apply what can change while
 * running (password file, ACL file, allow_anonymous, certificates, log
 * level). Anything wrong leaves the running settings in force. */
/* Settings the shards read only at start: a reload that changes one says
 * so instead of leaving it silently unapplied. */
static void warn_restart_only(const struct smq_config *was, const struct smq_config *now)
{
#define CHANGED(f) (memcmp(&was->f, &now->f, sizeof(was->f)) ? " " #f : "")
	char list[1024];

	snprintf(list, sizeof(list), "%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s",
		 CHANGED(shards), CHANGED(pin_cpus), CHANGED(max_connections),
		 CHANGED(max_packet_size), CHANGED(max_inflight_messages),
		 CHANGED(max_queued_messages), CHANGED(max_queued_bytes), CHANGED(max_keepalive),
		 CHANGED(allow_zero_length_clientid), CHANGED(queue_qos0_messages),
		 CHANGED(retain_available), CHANGED(max_qos), CHANGED(client_max_write_buffer),
		 CHANGED(persistent_client_expiration), CHANGED(max_retained_messages),
		 CHANGED(sys_interval), CHANGED(message_size_limit), CHANGED(upgrade_outgoing_qos),
		 CHANGED(set_tcp_nodelay), CHANGED(max_topic_alias), CHANGED(persistence),
		 CHANGED(persistence_location), CHANGED(persistence_file),
		 CHANGED(persistence_sync), CHANGED(autosave_interval));
#undef CHANGED
	if (list[0])
		smq_warn("reload: these settings changed but apply only after a restart:%s", list);
}

static void reload(struct smq_broker *b, const struct smq_config *running, const char *path,
		   const struct override *ov, int nov, int verbose)
{
	struct smq_config *next = malloc(sizeof(*next));
	char err[4096], what[512];

	if (smq_log_reopen())
		smq_err("could not reopen the log file: %s", strerror(errno));
	smq_notice("received SIGHUP: reloading%s%s", path ? " " : "", path ? path : "");
	if (!next) {
		smq_err("reload failed: out of memory; the running settings stay in force");
		return;
	}
	smq_config_defaults(next);
	if (path && smq_config_load(next, path, err, sizeof(err)))
		goto out_bad;
	for (int i = 0; i < nov; i++)
		if (smq_config_set(next, ov[i].key, ov[i].value, err, sizeof(err)))
			goto out_bad;
	if (smq_broker_reload(b, next, err, sizeof(err), what, sizeof(what)))
		goto out_bad;
	if (log_setup(next, verbose, err, sizeof(err)))
		smq_err("reload: %s; logging goes on as before", err);
	smq_notice("reloaded: %s", what);
	warn_restart_only(running, next);
	free(next);
	return;
out_bad:
	for (char *nl = strchr(err, '\n'); nl; nl = strchr(nl, '\n'))
		*nl = ' ';	/* several bad lines: one log line */
	smq_err("reload failed: %s; the running settings stay in force", err);
	free(next);
}

/* Wait for SIGINT or SIGTERM; reload on SIGHUP; SIGUSR1 flushes the store
 * to disk (mosquitto: save the store); SIGUSR2 is logged and otherwise
 * harmless (mosquitto: dump subscriptions). */
static int wait_for_signal(struct smq_broker *b, const struct smq_config *running,
			   const char *path, const struct override *ov, int nov, int verbose)
{
	sigset_t set;
	int sig = 0;

	signal_set(&set);
	for (;;) {
		sigwait(&set, &sig);
		if (sig == SIGINT || sig == SIGTERM)
			return sig;
		if (sig == SIGHUP) {
			reload(b, running, path, ov, nov, verbose);
		} else if (sig == SIGUSR1 && running->persistence) {
			smq_notice("received SIGUSR1: flushing the store to disk");
			smq_broker_flush(b);
		} else {
			smq_notice("received %s: nothing to do (%s)",
				   sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2",
				   sig == SIGUSR1 ? "persistence is off"
						  : "subscription dumps are not supported");
		}
	}
}

/* Print each line of a (multi-line) error, prefixed "shardmq: ". */
static void print_err(const char *err)
{
	const char *p = err;

	while (*p) {
		size_t n = strcspn(p, "\n");

		fprintf(stderr, "shardmq: %.*s\n", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

/* --test-config: what start-up would check before binding. */
static int check_config(const struct smq_config *cfg, const char *path)
{
	struct smq_listener_cfg *l = calloc(SMQ_CONFIG_MAX_LISTENERS + 1, sizeof(*l));
	struct smq_auth *auth = NULL;
	char err[1024];
	int n;

	if (!l) {
		fprintf(stderr, "shardmq: out of memory\n");
		return 1;
	}
	n = smq_config_listeners(cfg, l, SMQ_CONFIG_MAX_LISTENERS + 1, err, sizeof(err));
	free(l);
	if (n < 0 || smq_auth_load(cfg, 1, &auth, err, sizeof(err))) {
		fprintf(stderr, "shardmq: %s\n", err);
		return 1;
	}
	smq_auth_unref(auth);
	printf("shardmq: %s: the configuration is good\n", path ? path : "(defaults)");
	return 0;
}

static int write_pid_file(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f)) {
		fprintf(stderr, "shardmq: pid_file %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	return 0;
}

/* user NAME: once the listeners are bound, become NAME (and its groups)
 * if we are root; mosquitto's rule. Not root: nothing to drop. */
static int drop_privileges(const char *user)
{
	struct passwd *pw;

	if (!user[0] || geteuid() != 0 || !strcmp(user, "root"))
		return 0;
	pw = getpwnam(user);
	if (!pw) {
		fprintf(stderr, "shardmq: user %s: no such user\n", user);
		return -1;
	}
	/* glibc changes the credentials of every thread, shards included */
	if (initgroups(pw->pw_name, pw->pw_gid) || setgid(pw->pw_gid) || setuid(pw->pw_uid)) {
		fprintf(stderr, "shardmq: user %s: cannot switch to it: %s\n", user,
			strerror(errno));
		return -1;
	}
	smq_notice("running as user %s (uid %u, gid %u)", user, (unsigned)pw->pw_uid,
		   (unsigned)pw->pw_gid);
	return 0;
}

/* Every connection is a file descriptor: raise the soft limit to the hard
 * one, and say so when max_connections can still not be reached. Running
 * out is survivable (accept backs off, see shard/accept.c) but should not
 * come as a surprise. */
static void raise_nofile(const struct smq_config *cfg)
{
	struct rlimit rl;

	/* Ring memory counts against the locked-memory limit: take what the
	 * hard limit allows (rings shrink to fit what is left, net/uring.c). */
	if (!getrlimit(RLIMIT_MEMLOCK, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_MEMLOCK, &rl);
	}

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (!setrlimit(RLIMIT_NOFILE, &rl))
			smq_info("open files limit raised from %llu to %llu",
				 (unsigned long long)was, (unsigned long long)rl.rlim_cur);
		else
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (cfg->max_connections < 0 || (rlim_t)cfg->max_connections + 64 > rl.rlim_cur)
		smq_warn("max_connections (%d) is above the open files limit (%llu): connections "
			 "beyond about that many will wait or be refused (raise it with ulimit -n or "
			 "LimitNOFILE)", cfg->max_connections, (unsigned long long)rl.rlim_cur);
}

/* -d: fork before any thread starts; the parent waits on a pipe for the
 * child's start-up result and exits with it, so "shardmq -d && echo up"
 * means what it says and a start-up error still reaches the terminal.
 * Returns the fd the child reports through. */
static int go_background(void)
{
	int p[2];
	pid_t pid;
	char rc = 1;

	if (pipe(p)) {
		perror("shardmq: pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror("shardmq: fork");
		exit(1);
	}
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &rc, 1) != 1)
			rc = 1;
		_exit(rc);
	}
	close(p[0]);
	setsid();
	if (chdir("/"))
		smq_warn("cannot change to /: %s", strerror(errno));
	return p[1];
}

/* The daemon's start-up result to the waiting parent; then stdio goes to
 * /dev/null (logs go where log_dest says). */
static void report_started(int fd, char rc, const struct smq_config *cfg)
{
	int null;

	if (fd < 0)
		return;
	if (write(fd, &rc, 1) != 1)
		smq_warn("cannot report start-up to the parent: %s", strerror(errno));
	close(fd);
	if (rc)
		return;
	null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		if (cfg->log_dest & (SMQ_LOG_TO_STDERR | SMQ_LOG_TO_STDOUT))
			smq_notice("running in the background: log lines to stderr/stdout are lost; "
				   "set log_dest file or syslog");
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
}

int main(int argc, char **argv)
{
	static struct smq_config cfg;
	struct override ov[16];
	const char *cfg_path = NULL;
	struct smq_broker *b;
	static char err[16384];
	int nov = 0, verbose = 0, ret, report = -1;
	sigset_t set;

	if (parse_args(argc, argv, &cfg_path, ov, &nov, &verbose))
		return 1;
	smq_config_defaults(&cfg);
	if (cfg_path && smq_config_load(&cfg, cfg_path, err, sizeof(err))) {
		print_err(err);
		return 1;
	}
	for (int i = 0; i < nov; i++)
		set_or_die(&cfg, ov[i].key, ov[i].value);
	if (test_config)
		return check_config(&cfg, cfg_path);
	if (verbose)
		cfg.log_level = verbose > 1 ? SMQ_LOG_DEBUG : SMQ_LOG_INFO;
	if (log_setup(&cfg, verbose, err, sizeof(err))) {
		fprintf(stderr, "shardmq: log_dest file %s\n", err);
		return 1;
	}

	if (daemonize)
		report = go_background();
	/* Signals go to this thread's sigwait, never to a shard. */
	signal_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	raise_nofile(&cfg);
	b = smq_broker_new(&cfg);
	if (!b) {
		fprintf(stderr, "shardmq: out of memory\n");
		report_started(report, 1, &cfg);
		return 1;
	}
	ret = smq_broker_start(b, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "shardmq: %s\n", err);
		smq_broker_free(b);
		report_started(report, 1, &cfg);
		return 1;
	}
	if ((cfg.pid_file[0] && write_pid_file(cfg.pid_file)) || drop_privileges(cfg.user)) {
		smq_broker_free(b);
		if (cfg.pid_file[0])
			unlink(cfg.pid_file);
		report_started(report, 1, &cfg);
		return 1;
	}
	log_listening(b, &cfg);
	report_started(report, 0, &cfg);
	ret = wait_for_signal(b, &cfg, cfg_path, ov, nov, verbose);
	smq_notice("received %s, shutting down", ret == SIGINT ? "SIGINT" : "SIGTERM");
	smq_broker_free(b);
	if (cfg.pid_file[0])
		unlink(cfg.pid_file);	/* may fail once root is dropped: harmless */
	smq_config_fini(&cfg);
	smq_tls_thread_exit();	/* reloads made TLS contexts on this thread */
	smq_notice("shardmq stopped");
	return 0;
}
