/* ring.c - growing a FIFO ring. See ring.h. */
#include "core/ring.h"

#include <stdlib.h>
#include <string.h>

int smq_ring_grow(void **v, size_t *head, size_t n, size_t *cap, size_t size, size_t first)
{
	size_t ncap = *cap ? *cap * 2 : first;
	char *nv = malloc(ncap * size);

	if (!nv)
		return -1;
	for (size_t i = 0; i < n; i++)
		memcpy(nv + i * size, (char *)*v + ((*head + i) % *cap) * size, size);
	free(*v);
	*v = nv;
	*head = 0;
	*cap = ncap;
	return 0;
}
