/* fuzz_input.h - reading a libFuzzer input as a stream of choices, shared
 * by the fuzz targets (each is built alone with the core sources, so these are
 * static inline rather than a library). Past the end every read yields 0s. */
#ifndef SMQ_FUZZ_INPUT_H
#define SMQ_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct input {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t take(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* Up to @want bytes of input; returns how many (*p points at them). */
static inline size_t take_bytes(struct input *in, size_t want, const uint8_t **p)
{
	size_t n = want < in->n ? want : in->n;

	*p = in->p;
	in->p += n;
	in->n -= n;
	return n;
}

#endif
