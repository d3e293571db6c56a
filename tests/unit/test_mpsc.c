/* test_mpsc.c - single-thread behaviour of the MPSC inbox: FIFO order,
 * chains and batches, emptiness, the in-flight window, and the wake
 * protocol's flag handling. Concurrency is tested in
 * tests/stress/mpsc_stress.c (under TSan). */
#include <criterion/criterion.h>
#include <stddef.h>

#include "shard/mpsc.h"

struct item {
	int v;
	struct smq_mpsc_node node;	/* deliberately not first */
};

#define ITEM(n) ((struct item *)((char *)(n) - offsetof(struct item, node)))

static struct smq_mpsc q;
static struct item items[64];

static void setup(void)
{
	smq_mpsc_init(&q);
	for (int i = 0; i < 64; i++)
		items[i].v = i;
}

TestSuite(shard_mpsc, .init = setup);

static int pop_value(void)
{
	struct smq_mpsc_node *n = smq_mpsc_pop(&q);

	return n ? ITEM(n)->v : -1;
}

Test(shard_mpsc, new_queue_is_empty_and_pops_null)
{
	cr_assert(smq_mpsc_empty(&q));
	cr_assert_null(smq_mpsc_pop(&q));
	cr_assert(smq_mpsc_empty(&q));
}

Test(shard_mpsc, pops_in_push_order)
{
	for (int i = 0; i < 10; i++)
		smq_mpsc_push(&q, &items[i].node);
	for (int i = 0; i < 10; i++) {
		cr_assert_not(smq_mpsc_empty(&q));
		cr_assert_eq(pop_value(), i);
	}
	cr_assert(smq_mpsc_empty(&q));
	cr_assert_null(smq_mpsc_pop(&q));
}

Test(shard_mpsc, single_item_round_trips_many_times)
{
	/* the last node is popped by re-pushing the stub: do it repeatedly */
	for (int r = 0; r < 100; r++) {
		smq_mpsc_push(&q, &items[r % 64].node);
		cr_assert_not(smq_mpsc_empty(&q));
		cr_assert_eq(pop_value(), r % 64);
		cr_assert(smq_mpsc_empty(&q));
		cr_assert_null(smq_mpsc_pop(&q));
	}
}

Test(shard_mpsc, interleaved_push_and_pop_keep_order)
{
	int next_push = 0, next_pop = 0;

	for (int r = 0; r < 20; r++) {
		for (int k = 0; k < 3; k++, next_push++)
			smq_mpsc_push(&q, &items[next_push % 64].node);
		for (int k = 0; k < 2; k++, next_pop++)
			cr_assert_eq(pop_value(), next_pop % 64);
	}
	while (next_pop < next_push) {
		cr_assert_eq(pop_value(), next_pop % 64);
		next_pop++;
	}
	cr_assert(smq_mpsc_empty(&q));
}

Test(shard_mpsc, chain_pops_first_to_last_after_earlier_items)
{
	smq_mpsc_push(&q, &items[0].node);
	for (int i = 1; i < 5; i++)
		smq_mpsc_link(&items[i].node, &items[i + 1].node);
	smq_mpsc_push_chain(&q, &items[1].node, &items[5].node);
	smq_mpsc_push(&q, &items[6].node);
	for (int i = 0; i <= 6; i++)
		cr_assert_eq(pop_value(), i);
	cr_assert(smq_mpsc_empty(&q));
}

Test(shard_mpsc, chain_into_empty_queue)
{
	for (int i = 0; i < 3; i++)
		smq_mpsc_link(&items[i].node, &items[i + 1].node);
	smq_mpsc_push_chain(&q, &items[0].node, &items[3].node);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pop_value(), i);
	cr_assert_null(smq_mpsc_pop(&q));
}

Test(shard_mpsc, chain_of_one_is_a_push)
{
	smq_mpsc_push_chain(&q, &items[7].node, &items[7].node);
	cr_assert_eq(pop_value(), 7);
	cr_assert(smq_mpsc_empty(&q));
}

Test(shard_mpsc, chain_with_stale_next_in_last_is_terminated)
{
	/* last->next holds garbage from an earlier life: push must clear it */
	smq_mpsc_link(&items[2].node, &items[40].node);
	smq_mpsc_link(&items[1].node, &items[2].node);
	smq_mpsc_push_chain(&q, &items[1].node, &items[2].node);
	cr_assert_eq(pop_value(), 1);
	cr_assert_eq(pop_value(), 2);
	cr_assert_null(smq_mpsc_pop(&q));
	cr_assert(smq_mpsc_empty(&q));
}

Test(shard_mpsc, batch_pushes_all_in_order_and_resets)
{
	struct smq_mpsc_batch b;

	smq_mpsc_batch_init(&b);
	cr_assert_eq(smq_mpsc_batch_push(&q, &b), 0);
	cr_assert(smq_mpsc_empty(&q));
	for (int i = 0; i < 5; i++)
		smq_mpsc_batch_add(&b, &items[i].node);
	cr_assert(smq_mpsc_empty(&q), "nothing is visible before the batch is pushed");
	cr_assert_eq(smq_mpsc_batch_push(&q, &b), 5);
	cr_assert_null(b.first);
	cr_assert_eq(b.count, 0);
	smq_mpsc_batch_add(&b, &items[10].node);
	cr_assert_eq(smq_mpsc_batch_push(&q, &b), 1);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(pop_value(), i);
	cr_assert_eq(pop_value(), 10);
	cr_assert(smq_mpsc_empty(&q));
}

/* Reproduce a producer stopped between its exchange and its link: the node
 * is in (not empty) but not reachable (pop says NULL); once linked, it
 * pops. This is the case the consumer must never sleep on. */
Test(shard_mpsc, in_flight_push_is_not_empty_but_pops_null)
{
	struct smq_mpsc_node *prev;

	atomic_store(&items[3].node.next, NULL);
	prev = atomic_exchange(&q.head, &items[3].node);
	cr_assert_null(smq_mpsc_pop(&q));
	cr_assert_not(smq_mpsc_empty(&q));
	cr_assert_not(smq_mpsc_prepare_sleep(&q));
	cr_assert_eq(atomic_load(&q.sleeping), 0, "refused sleep must clear the flag");
	atomic_store(&prev->next, &items[3].node);
	cr_assert_eq(pop_value(), 3);
	cr_assert(smq_mpsc_empty(&q));
}

Test(shard_mpsc, in_flight_push_behind_last_item_pops_after_link)
{
	struct smq_mpsc_node *prev;

	smq_mpsc_push(&q, &items[1].node);
	atomic_store(&items[2].node.next, NULL);
	prev = atomic_exchange(&q.head, &items[2].node);
	cr_assert_eq(prev, &items[1].node);
	/* item 1 is reachable but is not the newest: it must wait for the
	 * link, otherwise the stub would be pushed in the wrong place */
	cr_assert_null(smq_mpsc_pop(&q));
	cr_assert_not(smq_mpsc_empty(&q));
	atomic_store(&prev->next, &items[2].node);
	cr_assert_eq(pop_value(), 1);
	cr_assert_eq(pop_value(), 2);
	cr_assert(smq_mpsc_empty(&q));
}

Test(shard_mpsc, prepare_sleep_on_empty_queue_allows_sleep)
{
	cr_assert(smq_mpsc_prepare_sleep(&q));
	cr_assert_eq(atomic_load(&q.sleeping), 1);
	smq_mpsc_woke(&q);
	cr_assert_eq(atomic_load(&q.sleeping), 0);
}

Test(shard_mpsc, prepare_sleep_with_items_refuses_and_clears_flag)
{
	smq_mpsc_push(&q, &items[0].node);
	cr_assert_not(smq_mpsc_prepare_sleep(&q));
	cr_assert_not(smq_mpsc_need_wake(&q), "no sleep announced, so no wake-up");
	cr_assert_eq(pop_value(), 0);
	cr_assert(smq_mpsc_prepare_sleep(&q));
}

Test(shard_mpsc, need_wake_is_true_once_per_sleep)
{
	cr_assert_not(smq_mpsc_need_wake(&q), "consumer awake");
	cr_assert(smq_mpsc_prepare_sleep(&q));
	smq_mpsc_push(&q, &items[0].node);
	cr_assert(smq_mpsc_need_wake(&q));
	smq_mpsc_push(&q, &items[1].node);
	cr_assert_not(smq_mpsc_need_wake(&q), "second producer must not wake again");
	smq_mpsc_woke(&q);
	cr_assert_eq(pop_value(), 0);
	cr_assert_eq(pop_value(), 1);
	/* next sleep: one more wake-up */
	cr_assert(smq_mpsc_prepare_sleep(&q));
	smq_mpsc_push(&q, &items[2].node);
	cr_assert(smq_mpsc_need_wake(&q));
	cr_assert_not(smq_mpsc_need_wake(&q));
}

Test(shard_mpsc, woke_without_producer_cancels_the_sleep)
{
	cr_assert(smq_mpsc_prepare_sleep(&q));
	smq_mpsc_woke(&q);	/* woken by something else, e.g. a socket */
	smq_mpsc_push(&q, &items[0].node);
	cr_assert_not(smq_mpsc_need_wake(&q));
	cr_assert_eq(pop_value(), 0);
}

Test(shard_mpsc, depth_counts_what_waits)
{
	struct smq_mpsc_batch b;

	cr_assert_eq(smq_mpsc_depth(&q), 0);
	for (int i = 0; i < 3; i++)
		smq_mpsc_push(&q, &items[i].node);
	smq_mpsc_batch_init(&b);
	for (int i = 3; i < 8; i++)
		smq_mpsc_batch_add(&b, &items[i].node);
	smq_mpsc_batch_push(&q, &b);
	cr_assert_eq(smq_mpsc_depth(&q), 8);
	for (int i = 0; i < 8; i++)
		cr_assert_not_null(smq_mpsc_pop(&q));
	cr_assert_eq(smq_mpsc_depth(&q), 0, "the stub's re-push does not count");
	cr_assert_null(smq_mpsc_pop(&q));
}
