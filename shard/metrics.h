/* metrics.h - the Prometheus endpoint: one HTTP connection's requests and
 * responses (GET /metrics, GET /, errors), and the exposition text itself.
 * Internal to shard/; everything runs on the thread of the shard serving
 * the metrics listener (shard 0), from conn.c's HTTP connection kind.
 *
 * A struct smq_http_conn is sans-I/O: conn.c feeds it the bytes a recv got
 * and sends what smq_metrics_conn_out_iov() points at; this file decides
 * what the answers are and when the connection is finished:
 *
 *	recv -> smq_metrics_conn_input() -> out_pending? send -> out_done()
 *	        -> smq_metrics_conn_resume()   (requests queued behind output)
 *	timer -> smq_metrics_conn_expire()    (idle or too slow: 408 / close)
 *	smq_metrics_conn_done() -> flush, then close
 */
#ifndef SMQ_SHARD_METRICS_H
#define SMQ_SHARD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct smq_shard;
struct smq_http_conn;

/* Open HTTP connections on the metrics listener, at most: past it a new
 * connection is closed at once (scrapers keep one or two). */
#define SMQ_METRICS_MAX_CONNS 64
/* A connection must complete a request head within this long of being
 * accepted or of its previous request, or it is closed (a partial head
 * gets a 408 first): idle keep-alive and slowloris alike. Apache's
 * KeepAliveTimeout default. */
#define SMQ_METRICS_IDLE_MS 5000u
/* Answers waiting to be sent past which pipelined requests wait too. */
#define SMQ_METRICS_OUT_HIGH (128u * 1024u)
/* The exposition format 0.0.4 content type (Prometheus text format). */
#define SMQ_METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"

/* A new connection whose deadline starts at @now_ms. NULL on ENOMEM. */
struct smq_http_conn *smq_metrics_conn_new(uint64_t now_ms);
/* NULL is fine. */
void smq_metrics_conn_free(struct smq_http_conn *h);

/* @n bytes from the client (copied): every complete request is answered in
 * order (pipelining), until SMQ_METRICS_OUT_HIGH bytes of answers wait to
 * be sent. Bytes after the connection's last response are discarded.
 * 0, or -ENOBUFS (the client sent far more than it reads: close it) or
 * -ENOMEM (close it). */
int smq_metrics_conn_input(struct smq_shard *s, struct smq_http_conn *h, const uint8_t *p,
			   size_t n);

/* Output drained a little: answer the requests waiting behind it. 0 or
 * -ENOMEM. */
int smq_metrics_conn_resume(struct smq_shard *s, struct smq_http_conn *h);

/* What to send next: 0 or 1 iovec (into the connection's own buffer, valid
 * until the next call on @h). */
int smq_metrics_conn_out_iov(struct smq_http_conn *h, struct iovec *iov, int max);
/* The kernel took @n bytes of it. */
void smq_metrics_conn_out_done(struct smq_http_conn *h, size_t n);
size_t smq_metrics_conn_out_pending(const struct smq_http_conn *h);

/* The last response is queued (Connection: close, an error, a request
 * with a body, the deadline): close once it is sent. */
bool smq_metrics_conn_done(const struct smq_http_conn *h);

/* The deadline check, at @now_ms: ms left (> 0), or 0 when it passed; then
 * the connection is done, with a 408 queued if a request was under way. */
int64_t smq_metrics_conn_expire(struct smq_http_conn *h, uint64_t now_ms);

/* The exposition of the whole broker as seen from shard @s: a malloc'd,
 * NUL-terminated text in *@out (the caller frees it), its length in *@len.
 * 0 or -ENOMEM. Other shards' counters are read racily (shard/sys.h). */
int smq_metrics_render(struct smq_shard *s, char **out, size_t *len);

#endif
