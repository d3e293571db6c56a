/* handoff.c - moving a connection to its session's home shard (see
 * handoff.h for the protocol). The max_connections slot travels with the
 * socket: the sender never releases it, the receiver does at close.
 */
#include "shard/handoff.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/engine.h"
#include "core/log.h"
#include "net/xform.h"
#include "shard/conn.h"
#include "shard/inbox.h"
#include "shard/shard.h"

/* The recv ended on a conn being handed off: move fd and bytes home. */
void smq_handoff_finish(struct smq_shard *s, struct conn *c)
{
	struct imsg *m = calloc(1, sizeof(*m));

	if (!m) {
		smq_warn("shard %u: out of memory handing off %s; closing it", s->idx, c->peer);
		close(c->fd);
		if (c->counted)
			smq_broker_conn_put(s->broker, c->lst);
		smq_conn_unlink_free(s, c);
		return;
	}
	m->type = IMSG_HANDOFF;
	m->fd = c->fd;
	m->listener = (uint16_t)c->lst->idx;
	m->ptr = c->rare->hbytes;	/* rare is set: smq_handoff_start() made sure */
	m->len = (uint32_t)c->rare->hlen;
	m->xf = c->x;		/* TLS state travels with the socket */
	c->x = NULL;
	snprintf(m->peer, sizeof(m->peer), "%s", c->peer);
	c->rare->hbytes = NULL;
	smq_inbox_batch_add(s, c->rare->home, m);
	/* The max_connections slot travels with the socket. */
	smq_conn_unlink_free(s, c);
}

void smq_handoff_start(struct smq_shard *s, struct conn *c)
{
	struct conn_rare *r = smq_conn_rare(c);	/* the bytes wait there */
	size_t len;
	int ret;

	ret = r ? smq_engine_conn_detach(s->eng, c->ec, &r->hbytes, &len, &r->home) : -ENOMEM;
	if (ret) {
		smq_conn_close(s, c, ret);
		return;
	}
	r->hlen = len;
	c->ec = NULL;
	c->state = CONN_HANDOFF;
	smq_debug("shard %u: handing %s off to shard %u", s->idx, c->peer, r->home);
	if (c->recv_armed)
		smq_conn_cancel_recv(s, c);
	else
		smq_conn_queue_reap(s, c);
}

void smq_handoff_append(struct conn *c, const uint8_t *p, size_t n)
{
	uint8_t *nb;

	/* Ciphertext stays ciphertext: the transport buffers it, and the home
	 * shard decrypts it after the plaintext already taken from the engine. */
	if (c->x) {
		smq_xform_feed(c->x, p, n);
		return;
	}
	nb = realloc(c->rare->hbytes, c->rare->hlen + n);	/* rare: set by _start */
	if (!nb)
		return;		/* the CONNECT is already in; the client will time out */
	memcpy(nb + c->rare->hlen, p, n);
	c->rare->hbytes = nb;
	c->rare->hlen += n;
}

void smq_handoff_adopt(struct smq_shard *s, struct imsg *m)
{
	struct smq_listener *l = smq_broker_listener(s->broker, m->listener);
	struct conn *c;

	if (s->stopping) {
		smq_broker_conn_put(s->broker, l);
		smq_imsg_free(m);
		return;
	}
	c = smq_conn_new(s, m->fd, m->peer, l);
	if (!c) {
		smq_warn("shard %u: out of memory adopting %s", s->idx, m->peer);
		smq_broker_conn_put(s->broker, l);
		smq_imsg_free(m);
		return;
	}
	c->counted = true;
	m->fd = -1;
	c->x = m->xf;
	m->xf = NULL;
	smq_conn_arm_recv(s, c);
	smq_conn_input_plain(s, c, m->ptr, m->len);
	smq_conn_drain_transport(s, c);
	free(m->ptr);
	free(m);
}
