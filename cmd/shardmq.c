/* shardmq.c - the broker program.
 *
 *	shardmq [-c FILE] [-p PORT] [--bind ADDR] [--shards N] [--pin] [-v]
 *
 * Loads the config (defaults, then the file, then command-line overrides),
 * starts the shards and waits for SIGINT/SIGTERM, then stops cleanly: every
 * connection closed, every thread joined, all memory freed.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "shard/broker.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shardmq [-c FILE] [-p PORT] [--bind ADDR] [--shards N] [--pin] [-v]\n"
		"\n"
		"  -c, --config FILE  read settings from FILE (key value lines)\n"
		"  -p, --port PORT    listen on PORT (default 1883)\n"
		"      --bind ADDR    listen on ADDR (default 127.0.0.1)\n"
		"      --shards N     shard threads (default: one per online CPU)\n"
		"      --pin          pin shard i to CPU i (config: pin_cpus)\n"
		"  -v, --verbose      log at info level (twice: debug)\n"
		"  -h, --help         this text\n");
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
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:p:vh", opts, NULL)) != -1) {
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

static int wait_for_signal(void)
{
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigwait(&set, &sig);
	return sig;
}

int main(int argc, char **argv)
{
	static struct smq_config cfg;
	struct override ov[16];
	const char *cfg_path = NULL;
	struct smq_broker *b;
	char err[512];
	int nov = 0, verbose = 0, ret;
	sigset_t set;

	if (parse_args(argc, argv, &cfg_path, ov, &nov, &verbose))
		return 1;
	smq_config_defaults(&cfg);
	if (cfg_path && smq_config_load(&cfg, cfg_path, err, sizeof(err))) {
		fprintf(stderr, "shardmq: %s\n", err);
		return 1;
	}
	for (int i = 0; i < nov; i++)
		set_or_die(&cfg, ov[i].key, ov[i].value);
	if (verbose)
		cfg.log_level = verbose > 1 ? SMQ_LOG_DEBUG : SMQ_LOG_INFO;
	smq_log_set_level(cfg.log_level);

	/* Signals go to this thread's sigwait, never to a shard. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	b = smq_broker_new(&cfg);
	if (!b) {
		fprintf(stderr, "shardmq: out of memory\n");
		return 1;
	}
	ret = smq_broker_start(b, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "shardmq: %s\n", err);
		smq_broker_free(b);
		return 1;
	}
	smq_notice("shardmq listening on %s:%d with %u shard%s%s", cfg.bind_address,
		   smq_broker_port(b), smq_broker_shards(b), smq_broker_shards(b) == 1 ? "" : "s",
		   cfg.pin_cpus ? " (pinned)" : "");
	if (cfg.allow_anonymous)
		smq_notice("anonymous clients are allowed (set allow_anonymous false to refuse them)");
	ret = wait_for_signal();
	smq_notice("received %s, shutting down", ret == SIGINT ? "SIGINT" : "SIGTERM");
	smq_broker_free(b);
	smq_config_fini(&cfg);
	smq_notice("shardmq stopped");
	return 0;
}
