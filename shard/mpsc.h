/* mpsc.h - a shard's inbox: Vyukov's intrusive multi-producer single-consumer
 * queue, plus an eventcount-style wake protocol so that the consumer can sleep.
 *
 * Nodes are embedded in the caller's objects (put struct smq_mpsc_node in the
 * message and recover it with container_of or by making it the first member).
 * The queue never allocates, never blocks and never fails.
 *
 * Threads:
 *  - smq_mpsc_push(), smq_mpsc_push_chain() and smq_mpsc_need_wake() may be
 *    called from any thread, concurrently ("producers");
 *  - every other function belongs to ONE thread, the consumer (the shard that
 *    owns the inbox); smq_mpsc_init() runs before any producer sees the queue.
 *
 * Ownership: push hands the node to the consumer; the producer must not touch
 * it afterwards (not even to read ->next). pop hands it back to the caller.
 *
 * Ordering: FIFO per producer (two pushes by one thread are popped in push
 * order; a chain is popped first..last). Pushes by different producers are
 * interleaved in the order of their atomic exchange on ->head.
 *
 * "In flight": a push is one atomic exchange on ->head followed by one store
 * linking the previous node to the new one. Between the two, the node is in
 * the queue but unreachable by the consumer: smq_mpsc_pop() returns NULL
 * although smq_mpsc_empty() is false. The window is a couple of instructions
 * long unless the producer is preempted there; the consumer should treat it as
 * "try again later" (go on with other work, come back next loop turn) and
 * must never go to sleep on it, which the wake protocol below guarantees.
 * Items pushed behind an in-flight one wait for it too (the list is linked in
 * exchange order).
 *
 * Wake protocol (no lost wake-ups):
 *
 *	consumer (shard loop)                 producer (after its pushes)
 *	---------------------                 ---------------------------
 *	while ((n = smq_mpsc_pop(q)))         smq_mpsc_push_chain(q, f, l);
 *		handle(n);                    if (smq_mpsc_need_wake(q))
 *	if (smq_mpsc_prepare_sleep(q)) {              send one wake-up (MSG_RING);
 *		block (io_uring_submit_and_wait);
 *		smq_mpsc_woke(q);
 *	}
 *
 * Why no wake-up is lost. The consumer does (C1) store sleeping=1, then (C2)
 * load head, both seq_cst. Every push does (P1) an exchange on head and
 * need_wake then does (P2) a load of sleeping, both seq_cst, P1 sequenced
 * before P2. All four are in the single total order S of seq_cst operations,
 * which agrees with program order. Either P1 precedes C2 in S, so C2 reads
 * the new head (or a later one) and prepare_sleep sees a non-empty queue and
 * refuses to sleep; or C2 precedes P1, hence C1 < C2 < P1 < P2 and P2 reads
 * sleeping=1 (or a later value written by another producer's exchange, which
 * then sends the wake-up itself, or by the consumer, which is then awake).
 * This is Dekker's pattern; it needs no separate fence because the exchange
 * in push is itself seq_cst (on x86 any locked exchange is a full barrier, so
 * this costs nothing over acq_rel, while a fence would add an mfence). Not
 * using atomic_thread_fence() also keeps the code exact under
 * ThreadSanitizer, which does not model fences.
 * need_wake exchanges sleeping to 0, so of all the producers that see it set,
 * exactly one gets true: one wake-up per sleep, not one per message.
 * Spurious wake-ups are possible (a wake-up sent for a sleep that
 * prepare_sleep then cancelled); the consumer just loops.
 *
 * Memory ordering of the data: a producer's plain writes to its node happen
 * before its release store that links the node (or the chain) into the list;
 * the consumer acquire-loads that link, so it sees the contents. The
 * exchange is also an acquire, so a producer's link store into the previous
 * node happens after the previous producer's "next = NULL".
 *
 * Layout: producers write ->head, the consumer owns ->tail and ->stub; each
 * group sits on its own cache line so the consumer's pops do not bounce the
 * producers' line. ->sleeping has a line of its own: producers read it after
 * every batch, the consumer writes it only around a sleep.
 */
#ifndef SMQ_MPSC_H
#define SMQ_MPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define SMQ_MPSC_CACHELINE 64

struct smq_mpsc_node {
	_Atomic(struct smq_mpsc_node *) next;
};

struct smq_mpsc {
	/* producers: the most recently pushed node (the stub when empty) */
	_Alignas(SMQ_MPSC_CACHELINE) _Atomic(struct smq_mpsc_node *) head;
	_Atomic uint64_t pushed;	/* nodes pushed (relaxed: a gauge only) */

	/* consumer only: the oldest node not yet popped, or the stub */
	_Alignas(SMQ_MPSC_CACHELINE) struct smq_mpsc_node *tail;
	struct smq_mpsc_node stub;	/* keeps the list non-empty */
	_Atomic uint64_t popped;	/* nodes popped (consumer writes, anyone reads) */

	/* wake protocol: 1 while the consumer sleeps or is about to */
	_Alignas(SMQ_MPSC_CACHELINE) _Atomic int sleeping;
};

/* A chain being built by one producer (e.g. per destination shard per loop
 * turn), pushed later with one exchange. Zero-initialise it, or
 * smq_mpsc_batch_init(). Owned by one thread. */
struct smq_mpsc_batch {
	struct smq_mpsc_node *first;
	struct smq_mpsc_node *last;
	unsigned count;
};

/* Make @q empty. Not thread-safe: before any producer can see @q. */
void smq_mpsc_init(struct smq_mpsc *q);

/* Append @node. Any thread; wait-free (one atomic exchange). */
void smq_mpsc_push(struct smq_mpsc *q, struct smq_mpsc_node *node);

/* Append the chain @first..@last, already linked through ->next (use
 * smq_mpsc_link(); relaxed stores are enough, the push publishes them). The
 * chain stays contiguous and in order. Any thread; one atomic exchange.
 * @first == @last pushes a single node. */
void smq_mpsc_push_chain(struct smq_mpsc *q, struct smq_mpsc_node *first,
			 struct smq_mpsc_node *last);

/* Link @b after @a while building a chain that no other thread sees yet. */
static inline void smq_mpsc_link(struct smq_mpsc_node *a, struct smq_mpsc_node *b)
{
	atomic_store_explicit(&a->next, b, memory_order_relaxed);
}

/* Consumer only. Remove and return the oldest node, or NULL when the queue
 * is empty OR when the next node is still in flight (see above): when NULL
 * comes back and smq_mpsc_empty() is false, try again later. */
struct smq_mpsc_node *smq_mpsc_pop(struct smq_mpsc *q);

/* Consumer only. True only if nothing at all has been pushed and not yet
 * popped, including nodes in flight. A snapshot: a producer may push right
 * after it returns (the wake protocol covers that). */
bool smq_mpsc_empty(struct smq_mpsc *q);

/* Consumer only, just before blocking. Announces the sleep and re-checks the
 * queue: returns true if the consumer may block now (a producer pushing from
 * now on will get need_wake() == true), false if the queue is not empty (the
 * announcement is withdrawn; go back and pop). */
bool smq_mpsc_prepare_sleep(struct smq_mpsc *q);

/* Consumer only, after it stops blocking for any reason (woken by a
 * producer, or by something else): withdraws the announcement. */
void smq_mpsc_woke(struct smq_mpsc *q);

/* Producer, after its push(es) to @q, same thread. True if the consumer
 * announced a sleep and this caller is the one that must wake it: exactly
 * one caller gets true per announced sleep. Cheap when the consumer is
 * awake (one load). */
bool smq_mpsc_need_wake(struct smq_mpsc *q);

/* Batches: collect nodes for one queue, push them with one exchange. */
static inline void smq_mpsc_batch_init(struct smq_mpsc_batch *b)
{
	b->first = NULL;
	b->last = NULL;
	b->count = 0;
}

/* Append @node to @b (owner thread of @b only). */
void smq_mpsc_batch_add(struct smq_mpsc_batch *b, struct smq_mpsc_node *node);

/* Push everything in @b to @q (one exchange) and empty @b. Returns the
 * number of nodes pushed (0: nothing done). Call smq_mpsc_need_wake(q)
 * afterwards if it returned non-zero. */
unsigned smq_mpsc_batch_push(struct smq_mpsc *q, struct smq_mpsc_batch *b);

/* Nodes pushed and not yet popped, for statistics: any thread, racy (it
 * may be off by what is being pushed or popped meanwhile). Only nodes of
 * smq_mpsc_push() and smq_mpsc_batch_push() count. */
uint64_t smq_mpsc_depth(struct smq_mpsc *q);

#endif
