/* stats.c - what a shard reports about itself. */
#include "core/engine.h"
#include "core/log.h"
#include "shard/shard.h"

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
	uint64_t dropped = st->dropped_qos0 + st->dropped_queue_full + st->dropped_too_large +
			   st->dropped_expired + st->dropped_sys;

	smq_log(dropped || st->protocol_errors ? SMQ_LOG_NOTICE : SMQ_LOG_INFO,
		"shard %u totals: %llu connects (%llu refused), %llu messages in, %llu out; "
		"dropped: %llu QoS 0 over client_max_write_buffer, %llu over the session queue "
		"limits, %llu too large for the client, %llu expired, %llu to $SYS; %llu protocol "
		"errors, %llu keepalive timeouts", s->idx,
		(unsigned long long)st->connects, (unsigned long long)st->connects_refused,
		(unsigned long long)st->msgs_in, (unsigned long long)st->msgs_out,
		(unsigned long long)st->dropped_qos0, (unsigned long long)st->dropped_queue_full,
		(unsigned long long)st->dropped_too_large, (unsigned long long)st->dropped_expired,
		(unsigned long long)st->dropped_sys, (unsigned long long)st->protocol_errors,
		(unsigned long long)st->keepalive_timeouts);
}
