/* mpsc.c - Vyukov's intrusive MPSC queue and the inbox wake protocol.
 *
 * The list runs from ->tail (oldest, consumer side) to ->head (newest,
 * producer side) through ->next. A producer swings ->head to its node with
 * one exchange, then links the previous head to it. The consumer walks from
 * ->tail. A permanent stub node keeps the list from ever being empty, so
 * neither side needs a NULL case: when the consumer is about to take the last
 * real node it first pushes the stub behind it, like any producer.
 *
 * Invariant: the consumer has popped everything iff tail == head == &stub.
 * A node in the list is owned by the queue; once popped it is the caller's.
 *
 * The memory-ordering argument (data and wake-ups) is in mpsc.h. Left to
 * others: what the nodes are, backpressure (a per-destination byte budget,
 * not built yet) and the actual sleep and wake-up system calls.
 */
#include "shard/mpsc.h"

void smq_mpsc_init(struct smq_mpsc *q)
{
	atomic_init(&q->stub.next, NULL);
	atomic_init(&q->head, &q->stub);
	q->tail = &q->stub;
	atomic_init(&q->sleeping, 0);
}

/* The exchange is seq_cst, not just acq_rel: it is half of the Dekker pair
 * that makes the wake protocol safe (see mpsc.h). Acquire orders our link
 * store after the previous pusher's "next = NULL"; release publishes that
 * store to the next pusher. The final release store publishes the chain's
 * contents to the consumer, who acquire-loads ->next. */
void smq_mpsc_push_chain(struct smq_mpsc *q, struct smq_mpsc_node *first,
			 struct smq_mpsc_node *last)
{
	struct smq_mpsc_node *prev;

	atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
	prev = atomic_exchange_explicit(&q->head, last, memory_order_seq_cst);
	/* the in-flight window: @first..@last are in but not reachable */
	atomic_store_explicit(&prev->next, first, memory_order_release);
}

void smq_mpsc_push(struct smq_mpsc *q, struct smq_mpsc_node *node)
{
	smq_mpsc_push_chain(q, node, node);
	atomic_fetch_add_explicit(&q->pushed, 1, memory_order_relaxed);
}

uint64_t smq_mpsc_depth(struct smq_mpsc *q)
{
	uint64_t popped = atomic_load_explicit(&q->popped, memory_order_relaxed);
	uint64_t pushed = atomic_load_explicit(&q->pushed, memory_order_relaxed);

	return pushed > popped ? pushed - popped : 0;
}

/* The consumer took a node: one writer, so no read-modify-write needed. */
static struct smq_mpsc_node *took(struct smq_mpsc *q, struct smq_mpsc_node *n)
{
	atomic_store_explicit(&q->popped,
			      atomic_load_explicit(&q->popped, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	return n;
}

static struct smq_mpsc_node *next_of(struct smq_mpsc_node *n)
{
	return atomic_load_explicit(&n->next, memory_order_acquire);
}

struct smq_mpsc_node *smq_mpsc_pop(struct smq_mpsc *q)
{
	struct smq_mpsc_node *tail = q->tail;
	struct smq_mpsc_node *next = next_of(tail);

	if (tail == &q->stub) {
		if (!next)
			return NULL;	/* empty, or the first node is in flight */
		q->tail = next;		/* step over the stub */
		tail = next;
		next = next_of(tail);
	}
	if (next) {
		q->tail = next;
		return took(q, tail);
	}
	/* @tail is the last reachable node. If it is not also the newest, a
	 * producer is between its exchange and its link: come back later. */
	if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
		return NULL;
	/* Take @tail, the last node, by putting the stub behind it first, so
	 * that the list is never empty. A producer may slip in between. */
	smq_mpsc_push_chain(q, &q->stub, &q->stub);
	next = next_of(tail);
	if (next) {
		q->tail = next;
		return took(q, tail);
	}
	return NULL;		/* that producer is still in flight */
}

/* tail != stub means tail itself is a pushed, unpopped node. With tail ==
 * stub, anything pushed since the stub moved head away from it, whether
 * linked yet or not. */
bool smq_mpsc_empty(struct smq_mpsc *q)
{
	if (q->tail != &q->stub)
		return false;
	return atomic_load_explicit(&q->head, memory_order_seq_cst) == &q->stub;
}

/* C1 then C2 of the argument in mpsc.h: both seq_cst (the load is inside
 * smq_mpsc_empty()). */
bool smq_mpsc_prepare_sleep(struct smq_mpsc *q)
{
	atomic_store_explicit(&q->sleeping, 1, memory_order_seq_cst);
	if (smq_mpsc_empty(q))
		return true;
	/* A producer that already took the flag will send a wake-up anyway:
	 * it turns into one spurious wake-up later, which is harmless. */
	atomic_store_explicit(&q->sleeping, 0, memory_order_relaxed);
	return false;
}

void smq_mpsc_woke(struct smq_mpsc *q)
{
	atomic_store_explicit(&q->sleeping, 0, memory_order_relaxed);
}

/* P2 of the argument: a seq_cst load after the seq_cst exchange of the
 * caller's push. The plain load first keeps the common case (consumer
 * awake) free of a read-modify-write on a shared line. */
bool smq_mpsc_need_wake(struct smq_mpsc *q)
{
	if (!atomic_load_explicit(&q->sleeping, memory_order_seq_cst))
		return false;
	return atomic_exchange_explicit(&q->sleeping, 0, memory_order_seq_cst) != 0;
}

void smq_mpsc_batch_add(struct smq_mpsc_batch *b, struct smq_mpsc_node *node)
{
	if (b->last)
		smq_mpsc_link(b->last, node);
	else
		b->first = node;
	b->last = node;
	b->count++;
}

unsigned smq_mpsc_batch_push(struct smq_mpsc *q, struct smq_mpsc_batch *b)
{
	unsigned n = b->count;

	if (!b->first)
		return 0;
	smq_mpsc_push_chain(q, b->first, b->last);
	atomic_fetch_add_explicit(&q->pushed, n, memory_order_relaxed);
	smq_mpsc_batch_init(b);
	return n;
}
