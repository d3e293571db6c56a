/* ring.h - a FIFO ring of fixed-size elements that doubles when full.
 *
 * The broker keeps several queues that are appended at the tail, taken at
 * the head and usually short (held acknowledgements, durability tickets,
 * the store's live epochs, a session's completed QoS 2 ids): one array
 * each, no allocation per element, grown here so the copying is written
 * once. Element i (0 = oldest) is at (head + i) % cap.
 */
#ifndef SMQ_RING_H
#define SMQ_RING_H

#include <stddef.h>

/* Double the ring *v (@n elements of @size bytes used, starting at *head,
 * *cap slots; *cap 0: empty, it gets @first slots), keeping the order and
 * moving the head to 0. 0, or -1 on ENOMEM (the ring is untouched). */
int smq_ring_grow(void **v, size_t *head, size_t n, size_t *cap, size_t size, size_t first);

#endif
