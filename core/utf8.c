/* utf8.c - UTF-8 validation for MQTT strings (declared in codec.h).
 *
 * Implements smq_utf8_valid(): well-formed UTF-8 per Unicode table 3-7, with
 * U+0000 refused as MQTT requires [MQTT-1.5.4-1] [MQTT-1.5.4-2] (3.1.1
 * [MQTT-1.5.3-1] [MQTT-1.5.3-2]). Runs of ASCII are checked eight bytes at a
 * time; most topics, client ids and filters are pure ASCII.
 *
 * Invariant: a string it accepts contains no surrogate, no overlong form, no
 * code point above U+10FFFF and no U+0000.
 *
 * smq_utf8_valid_name() also refuses the control characters U+0001..U+001F
 * and U+007F..U+009F ([MQTT-1.5.4-3] lets a receiver do so): names with
 * them are a log-injection and interoperability hazard. Non-characters
 * (U+FFFF) stay allowed everywhere.
 */
#include "core/codec.h"

#include <string.h>

/* Length of the well-formed sequence at p (lead byte >= 0x80), or 0.
 * Follows Unicode table 3-7: the second byte's range depends on the lead
 * byte, which rules out overlongs (E0, F0), surrogates (ED) and code points
 * above U+10FFFF (F4) in one comparison. */
static size_t utf8_seq(const uint8_t *p, size_t left)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c < 0xc2 || c > 0xf4)
		return 0;
	n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (left < n)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* Eight bytes, all in U+0001..U+007F? (a byte is zero iff (b - 1) & ~b has
 * its top bit set; a byte >= 0x80 has it set in b itself) */
static inline bool ascii8(const uint8_t *p)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t w;

	memcpy(&w, p, 8);
	return !((w | ((w - ones) & ~w)) & highs);
}

/* Full validation from a character boundary. */
static bool utf8_check(const uint8_t *p, const uint8_t *end)
{
	size_t n;

	while (p < end) {
		while (end - p >= 8 && ascii8(p))
			p += 8;
		if (p == end)
			break;
		if (*p < 0x80) {
			if (!*p)
				return false;	/* U+0000 [MQTT-1.5.4-2] */
			p++;
			continue;
		}
		n = utf8_seq(p, (size_t)(end - p));
		if (!n)
			return false;	/* ill-formed, surrogate [MQTT-1.5.4-1] */
		p += n;
	}
	return true;
}

bool smq_utf8_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;

	/* Fast path for pure ASCII: whole words, then one last word that
	 * overlaps the previous ones instead of a byte loop for the tail. */
	if (len >= 8) {
		while (i + 8 <= len && ascii8(p + i))
			i += 8;
		if (i + 8 > len && ascii8(p + len - 8))
			return true;
	} else {
		while (i < len && (uint8_t)(p[i] - 1) < 0x7f)
			i++;
		if (i == len)
			return true;
	}
	/* everything before i is ASCII, so i starts a character */
	return utf8_check(p + i, p + len);
}

/* Eight ASCII bytes (ascii8() holds): any of them below 0x20 or 0x7f? */
static inline bool ctrl8(const uint8_t *p)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t w, del;

	memcpy(&w, p, 8);
	del = w ^ (ones * 0x7f);	/* a zero byte where w had 0x7f */
	return ((w - ones * 0x20) & ~w & highs) || ((del - ones) & ~del & highs);
}

bool smq_utf8_valid_name(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i + 8 <= len && ascii8(p + i)) {
		if (ctrl8(p + i))
			return false;
		i += 8;
	}
	for (; i < len; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
		/* U+0080..U+009F are C2 80..C2 9F */
		if (p[i] == 0xc2 && i + 1 < len && p[i + 1] < 0xa0)
			return false;
	}
	return smq_utf8_valid(p, len);
}
