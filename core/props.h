/* props.h - internals shared by codec.c and props.c; not for other modules.
 *
 * The bounds-checked reading cursor and big-endian writers of the wire
 * format, and the MQTT 5 property list codec that props.c implements. The
 * public property API (iterators, smq_props_put_*) is declared in codec.h.
 */
#ifndef SMQ_PROPS_H
#define SMQ_PROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/codec.h"

/* ---- byte helpers ---------------------------------------------------------- */

static inline uint16_t smq_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t smq_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline bool smq_str_eq(struct smq_str a, struct smq_str b)
{
	return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

/* ---- a bounds-checked reading cursor over one packet ---------------------- */

struct smq_rd {
	const uint8_t *p;
	const uint8_t *end;
};

static inline size_t smq_rd_left(const struct smq_rd *r)
{
	return (size_t)(r->end - r->p);
}

static inline int smq_rd_u8(struct smq_rd *r, uint8_t *v)
{
	if (r->p >= r->end)
		return -SMQ_RC_MALFORMED;
	*v = *r->p++;
	return 0;
}

static inline int smq_rd_u16(struct smq_rd *r, uint16_t *v)
{
	if (smq_rd_left(r) < 2)
		return -SMQ_RC_MALFORMED;
	*v = smq_be16(r->p);
	r->p += 2;
	return 0;
}

static inline int smq_rd_u32(struct smq_rd *r, uint32_t *v)
{
	if (smq_rd_left(r) < 4)
		return -SMQ_RC_MALFORMED;
	*v = smq_be32(r->p);
	r->p += 4;
	return 0;
}

static inline int smq_rd_varint(struct smq_rd *r, uint32_t *v)
{
	int n;

	if (r->p < r->end && !(*r->p & 0x80)) {
		*v = *r->p++;
		return 0;
	}
	n = smq_varint_get(r->p, smq_rd_left(r), v);
	if (n <= 0)
		return -SMQ_RC_MALFORMED;	/* cut off by the packet's end, or 5 bytes */
	r->p += n;
	return 0;
}

/* Binary data: two-byte length, then that many bytes inside the packet. */
static inline int smq_rd_bin(struct smq_rd *r, struct smq_str *s)
{
	uint32_t n;

	if (smq_rd_left(r) < 2)
		return -SMQ_RC_MALFORMED;
	n = smq_be16(r->p);
	if (smq_rd_left(r) - 2 < n)
		return -SMQ_RC_MALFORMED;
	s->p = r->p + 2;
	s->len = n;
	r->p += 2 + n;
	return 0;
}

/* UTF-8 encoded string: well-formed, no U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2]
 * (3.1.1 [MQTT-1.5.3-1] [MQTT-1.5.3-2]); Malformed in both versions. */
static inline int smq_rd_utf8(struct smq_rd *r, struct smq_str *s)
{
	int ret = smq_rd_bin(r, s);

	if (ret)
		return ret;
	return smq_utf8_valid(s->p, s->len) ? 0 : -SMQ_RC_MALFORMED;
}

/* A UTF-8 name (topic, filter, client id, user name): smq_rd_utf8() that
 * also refuses control characters (smq_utf8_valid_name()). */
static inline int smq_rd_name(struct smq_rd *r, struct smq_str *s)
{
	int ret = smq_rd_bin(r, s);

	if (ret)
		return ret;
	return smq_utf8_valid_name(s->p, s->len) ? 0 : -SMQ_RC_MALFORMED;
}

/* A packet identifier, which must not be 0 [MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1]). */
static inline int smq_rd_pid(struct smq_rd *r, uint16_t *pid)
{
	int ret = smq_rd_u16(r, pid);

	if (!ret && !*pid)
		ret = -SMQ_RC_MALFORMED;
	return ret;
}

/* Nothing may follow the last field. */
static inline int smq_rd_end(const struct smq_rd *r)
{
	return r->p == r->end ? 0 : -SMQ_RC_MALFORMED;
}

/* ---- writers; callers have checked the space ------------------------------ */

static inline uint8_t *smq_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static inline uint8_t *smq_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static inline uint8_t *smq_put_str(uint8_t *p, struct smq_str s)
{
	p = smq_put_u16(p, (uint16_t)s.len);
	if (s.len)
		memcpy(p, s.p, s.len);
	return p + s.len;
}

/* ---- property lists (props.c) ----------------------------------------------- */

/* Read a property length and the properties after it, which must be valid in
 * context @ctx (enum smq_prop_ctx), into @pr. Views point into the packet.
 * 0, -SMQ_RC_MALFORMED, -SMQ_RC_PROTOCOL_ERROR or -SMQ_RC_TOPIC_ALIAS_INVALID
 * (codec.c's head comment says which rule gets which). */
int smq_props_read(struct smq_rd *r, uint8_t ctx, struct smq_props *pr);

/* Encoded size of the properties present in @pr (property length not
 * included), or -SMQ_RC_MALFORMED if one is not valid in @ctx or cannot be
 * represented. */
long smq_props_size(const struct smq_props *pr, uint8_t ctx);

/* Write the property length @plen (from smq_props_size) and the properties
 * of @pr in identifier order; returns the end. */
uint8_t *smq_props_write(uint8_t *p, const struct smq_props *pr, uint32_t plen);

/* Same properties present, with the same values (repeated ones in order)? */
bool smq_props_equal(const struct smq_props *a, const struct smq_props *b);

#endif
