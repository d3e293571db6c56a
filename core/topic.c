/* topic.c - topic names and filters: validation, "$share/" parsing and the
 * reference matcher.
 *
 * Invariant: every function reads only its arguments, byte by byte, and
 * never reads past len; any byte string is a safe input (the fuzzer feeds
 * raw bytes). Nothing allocates.
 *
 * Left to others: UTF-8 well-formedness (codec.c checks every wire string),
 * the fast many-filter matcher (subtree.c, which is tested against
 * smq_topic_match() below), and deciding whether a client may use shared
 * subscriptions or wildcards at all (the broker).
 */
#include "core/topic.h"

#include <errno.h>
#include <string.h>

/* Any zero byte in @w? Exact for "any", as used here. */
static inline bool has_zero8(uint64_t w)
{
	return ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull) != 0;
}

bool smq_topic_name_valid(struct smq_str topic)
{
	const uint64_t ones = 0x0101010101010101ull;
	uint32_t i = 0;

	if (topic.len < 1 || topic.len > SMQ_TOPIC_MAX)	/* [MQTT-4.7.3-1] */
		return false;
	/* eight bytes at a time: one check per PUBLISH of every byte */
	for (; i + 8 <= topic.len; i += 8) {
		uint64_t w;

		memcpy(&w, topic.p + i, 8);
		if (has_zero8(w) || has_zero8(w ^ ones * '+') || has_zero8(w ^ ones * '#'))
			return false;
	}
	for (; i < topic.len; i++) {
		uint8_t c = topic.p[i];

		/* [MQTT-3.3.2-2] no wildcards; [MQTT-4.7.3-2] no U+0000 */
		if (c == '+' || c == '#' || c == 0)
			return false;
	}
	return true;
}

bool smq_topic_filter_valid(struct smq_str filter)
{
	uint32_t i;

	if (filter.len < 1 || filter.len > SMQ_TOPIC_MAX)	/* [MQTT-4.7.3-1] */
		return false;
	for (i = 0; i < filter.len; i++) {
		uint8_t c = filter.p[i];
		bool starts = i == 0 || filter.p[i - 1] == '/';
		bool ends = i + 1 == filter.len || filter.p[i + 1] == '/';

		if (c == 0)				/* [MQTT-4.7.3-2] */
			return false;
		if (c == '+' && !(starts && ends))	/* [MQTT-4.7.1-3] */
			return false;
		if (c == '#' && !(starts && i + 1 == filter.len))	/* [MQTT-4.7.1-2] */
			return false;
	}
	return true;
}

bool smq_topic_is_wild(struct smq_str filter)
{
	return filter.len && (memchr(filter.p, '+', filter.len) ||
			      memchr(filter.p, '#', filter.len));
}

int smq_topic_parse_shared(struct smq_str filter, struct smq_str *group,
			   struct smq_str *inner)
{
	static const char prefix[] = "$share/";
	const uint32_t plen = sizeof(prefix) - 1;
	const uint8_t *g, *slash;
	uint32_t glen, i;
	struct smq_str in;

	if (filter.len < plen || memcmp(filter.p, prefix, plen) != 0)
		return 1;
	g = filter.p + plen;
	slash = memchr(g, '/', filter.len - plen);
	if (!slash)		/* no inner filter at all */
		return -EINVAL;
	glen = (uint32_t)(slash - g);
	if (glen == 0)		/* [MQTT-4.8.2-1] ShareName at least one character */
		return -EINVAL;
	for (i = 0; i < glen; i++)	/* [MQTT-4.8.2-2] */
		if (g[i] == '+' || g[i] == '#' || g[i] == 0)
			return -EINVAL;
	in.p = slash + 1;
	in.len = filter.len - plen - glen - 1;
	if (!smq_topic_filter_valid(in))
		return -EINVAL;
	group->p = g;
	group->len = glen;
	*inner = in;
	return 0;
}

/* Length of the level starting at p[0], p holding n bytes. */
static uint32_t level_len(const uint8_t *p, uint32_t n)
{
	const uint8_t *s = memchr(p, '/', n);

	return s ? (uint32_t)(s - p) : n;
}

/*
 * Walk filter and topic level by level. At each step fi / ti index the start
 * of the current level; a level ends at '/' or at the end. The walk ends in
 * one of four ways: '#' (matches the rest, even nothing: "a/#" vs "a"),
 * both exhausted together (match), or one exhausted first / a literal
 * mismatch (no match).
 */
bool smq_topic_match(struct smq_str filter, struct smq_str topic)
{
	uint32_t fi = 0, ti = 0;

	if (filter.len == 0 || topic.len == 0)
		return false;
	/* [MQTT-4.7.2-1] */
	if (topic.p[0] == '$' && (filter.p[0] == '+' || filter.p[0] == '#'))
		return false;
	for (;;) {
		uint32_t fl = level_len(filter.p + fi, filter.len - fi);
		bool flast = fi + fl == filter.len;
		uint32_t tl, tnext;

		if (fl == 1 && filter.p[fi] == '#')
			return true;	/* the rest, including the parent level */
		tl = level_len(topic.p + ti, topic.len - ti);
		if (!(fl == 1 && filter.p[fi] == '+') &&
		    (fl != tl || memcmp(filter.p + fi, topic.p + ti, fl) != 0))
			return false;
		tnext = ti + tl + 1;	/* > topic.len when this was the last level */
		if (flast)
			return tnext > topic.len;
		fi += fl + 1;
		if (tnext > topic.len) {
			/* topic ended: "x/#" still matches "x" */
			fl = filter.len - fi;
			return fl == 1 && filter.p[fi] == '#';
		}
		ti = tnext;
	}
}
