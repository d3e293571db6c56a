/* stats.c - what a shard reports about itself. */
#include <stdio.h>

#include "core/engine.h"
#include "core/log.h"
#include "shard/shard.h"
#include "shard/sys.h"

static void log_engine_totals(struct smq_shard *s);

/* The loop's and the engine's totals over the shard's life (at shutdown). */
void smq_shard_log_totals(struct smq_shard *s)
{
	smq_info("shard %u: %llu loop turns (%llu slept), %llu recvs (%llu bytes), %llu sends "
		 "(%llu bytes), recv out of buffers %llu times", s->idx,
		 (unsigned long long)s->turns, (unsigned long long)s->waits,
		 (unsigned long long)s->recvs, (unsigned long long)s->recv_bytes,
		 (unsigned long long)s->sends, (unsigned long long)s->send_bytes,
		 (unsigned long long)s->enobufs);
	log_engine_totals(s);
}

/* What the shard's engine counted over its life: messages in and out, and
 * everything refused or dropped at a limit (a notice if anything was). */
static void log_engine_totals(struct smq_shard *s)
{
	const struct smq_engine_stats *st = smq_engine_stats(s->eng);
	char drops[512];
	size_t n = 0;
	uint64_t dropped = 0;

	/* every kind $SYS and the metrics know, named as there */
	for (unsigned k = 0; k < SMQ_SYS_DROP_KINDS; k++) {
		uint64_t v = smq_sys_dropped(st, k);
		int w = snprintf(drops + n, sizeof(drops) - n, "%s%llu %s", k ? ", " : "",
				 (unsigned long long)v, smq_sys_drop_kinds[k].name);

		if (w > 0 && (size_t)w < sizeof(drops) - n)
			n += (size_t)w;
		dropped += v;
	}
	smq_log(dropped || st->protocol_errors ? SMQ_LOG_NOTICE : SMQ_LOG_INFO,
		"shard %u totals: %llu connects (%llu refused), %llu messages in, %llu out; "
		"dropped: %s; %llu refused by a full store; %llu protocol errors, %llu keepalive "
		"timeouts", s->idx,
		(unsigned long long)st->connects, (unsigned long long)st->connects_refused,
		(unsigned long long)st->msgs_in, (unsigned long long)st->msgs_out, drops,
		(unsigned long long)st->store_refused, (unsigned long long)st->protocol_errors,
		(unsigned long long)st->keepalive_timeouts);
}
