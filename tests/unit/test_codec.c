/* test_codec.c - core/codec.c: framing, decode, reader, encode, round trips.
 *
 * Known-good packets come from codec_vectors.h (hand-assembled from the
 * specs); every validation rule has its own test asserting the exact reason
 * code; round trips cover every packet type of every version with every
 * property. Round-trip and split tests compare with smq_packet_equal().
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "tests/unit/codec_vectors.h"

#define MAL (-SMQ_RC_MALFORMED)
#define PE (-SMQ_RC_PROTOCOL_ERROR)

#define BYTES(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })
#define S(lit) SMQ_STR(lit)

static bool str_is(struct smq_str s, const char *lit)
{
	return s.len == strlen(lit) && !memcmp(s.p, lit, s.len);
}

static int decode_bytes(const uint8_t *b, size_t n, uint8_t version, struct smq_packet *pkt)
{
	return smq_decode(b, n, version, pkt);
}

static const struct codec_vec *vec(const char *name)
{
	size_t i;

	for (i = 0; i < CODEC_NVECS; i++)
		if (!strcmp(codec_vecs[i].name, name))
			return &codec_vecs[i];
	cr_assert_fail("no vector %s", name);
	return NULL;
}

static void decode_vec(const char *name, struct smq_packet *pkt)
{
	const struct codec_vec *v = vec(name);

	cr_assert_eq(smq_decode(v->bytes, v->len, v->version, pkt), 0, "%s", name);
}

/* ---- variable byte integers ------------------------------------------------- */

struct varint_case {
	uint32_t value;
	uint8_t bytes[4];
	int n;
};

ParameterizedTestParameters(core_codec, varint_edges_round_trip)
{
	static struct varint_case cases[] = {
		{ 0, { 0x00 }, 1 },
		{ 127, { 0x7f }, 1 },
		{ 128, { 0x80, 0x01 }, 2 },
		{ 16383, { 0xff, 0x7f }, 2 },
		{ 16384, { 0x80, 0x80, 0x01 }, 3 },
		{ 2097151, { 0xff, 0xff, 0x7f }, 3 },
		{ 2097152, { 0x80, 0x80, 0x80, 0x01 }, 4 },
		{ 268435455, { 0xff, 0xff, 0xff, 0x7f }, 4 },
	};

	return cr_make_param_array(struct varint_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct varint_case *c, core_codec, varint_edges_round_trip)
{
	uint8_t out[4] = { 0 };
	uint32_t v = 0xdeadbeef;

	cr_assert_eq(smq_varint_size(c->value), c->n);
	cr_assert_eq(smq_varint_put(out, c->value), c->n);
	cr_assert_arr_eq(out, c->bytes, (size_t)c->n);
	cr_assert_eq(smq_varint_get(c->bytes, (size_t)c->n, &v), c->n);
	cr_assert_eq(v, c->value);
	/* one byte short: need more input, not an error */
	cr_assert_eq(smq_varint_get(c->bytes, (size_t)c->n - 1, &v), 0);
}

Test(core_codec, varint_five_bytes_is_malformed)
{
	uint32_t v;

	cr_assert_eq(smq_varint_get(BYTES(0xff, 0xff, 0xff, 0xff, 0x01), &v), MAL);
	cr_assert_eq(smq_varint_get(BYTES(0x80, 0x80, 0x80, 0x80), &v), MAL);
}

Test(core_codec, varint_over_max_cannot_be_encoded)
{
	uint8_t out[5];

	cr_assert_eq(smq_varint_put(out, SMQ_MAX_REMAINING + 1), MAL);
	cr_assert_eq(smq_varint_size(SMQ_MAX_REMAINING + 1), MAL);
}

/* The spec does not make a receiver refuse non-minimal encodings (5.0
 * [MQTT-1.5.5-1] binds the sender; 3.1.1 says nothing), so we accept them. */
Test(core_codec, varint_non_minimal_is_accepted_on_decode)
{
	uint32_t v = 1;
	struct smq_packet pkt;

	cr_assert_eq(smq_varint_get(BYTES(0x80, 0x00), &v), 2);
	cr_assert_eq(v, 0);
	cr_assert_eq(decode_bytes(BYTES(0xC0, 0x80, 0x00), 4, &pkt), 0);
	cr_assert_eq(pkt.type, SMQ_PINGREQ);
}

/* ---- UTF-8 -------------------------------------------------------------------- */

struct utf8_case {
	char name[32];		/* inline: params are copied into the test process */
	uint8_t bytes[24];
	uint8_t len;
	bool valid;
};

ParameterizedTestParameters(core_codec, utf8_validation)
{
	static struct utf8_case cases[] = {
		{ "empty", { 0 }, 0, true },
		{ "ascii", { 'a', '/', 'b' }, 3, true },
		{ "long ascii", "abcdefghijklmnopqrstuvw", 23, true },
		{ "2-byte", { 0xC3, 0xA9 }, 2, true },
		{ "3-byte", { 0xE2, 0x82, 0xAC }, 3, true },
		{ "4-byte", { 0xF0, 0x9F, 0x98, 0x80 }, 4, true },
		{ "U+FFFF allowed", { 0xEF, 0xBF, 0xBF }, 3, true },
		{ "U+10FFFF", { 0xF4, 0x8F, 0xBF, 0xBF }, 4, true },
		{ "ascii then 2-byte after 8", "abcdefgh\xC3\xA9xyz", 13, true },
		{ "U+0000", { 'a', 0x00, 'b' }, 3, false },
		{ "U+0000 in fast path", { 'a', 'b', 'c', 'd', 'e', 0, 'g', 'h', 'i' }, 9, false },
		{ "U+0000 at 16", "abcdefghijklmnop\0q", 18, false },
		{ "lone continuation", { 0x80 }, 1, false },
		{ "bad second byte", { 0xC3, 0x28 }, 2, false },
		{ "truncated 3-byte", { 0xE2, 0x82 }, 2, false },
		{ "truncated 4-byte at end", { 'a', 0xF0, 0x9F, 0x98 }, 4, false },
		{ "overlong C0", { 0xC0, 0xAF }, 2, false },
		{ "overlong C1", { 0xC1, 0xBF }, 2, false },
		{ "overlong E0", { 0xE0, 0x80, 0xAF }, 3, false },
		{ "overlong F0", { 0xF0, 0x80, 0x80, 0xAF }, 4, false },
		{ "surrogate D800", { 0xED, 0xA0, 0x80 }, 3, false },
		{ "surrogate DFFF", { 0xED, 0xBF, 0xBF }, 3, false },
		{ "above U+10FFFF", { 0xF4, 0x90, 0x80, 0x80 }, 4, false },
		{ "F5 lead", { 0xF5, 0x80, 0x80, 0x80 }, 4, false },
		{ "FF", { 0xFF }, 1, false },
		{ "high byte in fast path", "abcdefg\xFFhijk", 12, false },
		{ "U+0000 last of 13", "abcdefghijkl\0", 13, false },
		{ "2-byte in the tail", "abcdefghij\xC3\xA9", 12, true },
		{ "lone continuation in tail", "abcdefghijk\x80", 12, false },
		{ "short with U+0000", "abc\0", 4, false },
		{ "short 2-byte", "ab\xC3\xA9", 4, true },
		{ "short bad", "ab\xC3", 3, false },
	};

	return cr_make_param_array(struct utf8_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct utf8_case *c, core_codec, utf8_validation)
{
	cr_assert_eq(smq_utf8_valid(c->bytes, c->len), c->valid, "%s", c->name);
}

/* ---- framing --------------------------------------------------------------------- */

Test(core_codec, frame_needs_more_until_header_is_complete)
{
	uint32_t hl = 0, rem = 0;

	cr_assert_eq(smq_frame(BYTES(0x30), 0, &hl, &rem), 1);
	cr_assert_eq(smq_frame(BYTES(0x30, 0x80), 0, &hl, &rem), 1);
	cr_assert_eq(smq_frame(BYTES(0x30, 0x80, 0x01), 0, &hl, &rem), 0);
	cr_assert_eq(hl, 3);
	cr_assert_eq(rem, 128);
}

Test(core_codec, frame_rejects_five_byte_remaining_length)
{
	uint32_t hl, rem;
	struct smq_packet pkt;

	cr_assert_eq(smq_frame(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01), 0, &hl, &rem), MAL);
	cr_assert_eq(decode_bytes(BYTES(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01), 4, &pkt), MAL);
}

Test(core_codec, frame_refuses_oversize_packet_from_header_alone)
{
	uint32_t hl, rem;

	/* 3 header bytes announce 1 + 2 + 200 bytes; the limit is 100 */
	cr_assert_eq(smq_frame(BYTES(0x30, 0xC8, 0x01), 100, &hl, &rem),
		     -SMQ_RC_PACKET_TOO_LARGE);
	/* exactly at the limit is fine */
	cr_assert_eq(smq_frame(BYTES(0x30, 0x62), 100, &hl, &rem), 0);
	cr_assert_eq(smq_frame(BYTES(0x30, 0x63), 100, &hl, &rem), -SMQ_RC_PACKET_TOO_LARGE);
}

Test(core_codec, decode_refuses_length_not_matching_frame)
{
	struct smq_packet pkt;

	cr_assert_eq(decode_bytes(BYTES(0xC0, 0x00, 0x00), 4, &pkt), MAL);
	cr_assert_eq(decode_bytes(BYTES(0x40, 0x02, 0x00), 4, &pkt), MAL);
}

/* ---- known-good packets -------------------------------------------------------- */

/* The vector tables are walked inside one test each: Criterion spends ~25 ms
 * per test process, and failure messages name the vector anyway. */
Test(core_codec, decodes_known_good_packets)
{
	struct smq_packet pkt;
	size_t i;

	for (i = 0; i < CODEC_NVECS; i++) {
		const struct codec_vec *v = &codec_vecs[i];

		cr_assert_eq(smq_decode(v->bytes, v->len, v->version, &pkt), 0, "%s", v->name);
		cr_assert_eq(pkt.type, v->type, "%s", v->name);
		if (v->type != SMQ_CONNECT)
			cr_assert_eq(pkt.version, v->version, "%s", v->name);
	}
}

/* Feed @v through a reader split at @cut (and then byte by byte when
 * @bytewise) and expect exactly the packet smq_decode() gives. */
static void expect_split_same(const struct codec_vec *v, size_t cut, bool bytewise)
{
	struct smq_packet ref, got;
	struct smq_reader r;
	const uint8_t *in = v->bytes;
	size_t left = cut, rest = v->len - cut, off = 0;
	int ret, n = 0;

	cr_assert_eq(smq_decode(v->bytes, v->len, v->version, &ref), 0);
	smq_reader_init(&r, 0, v->version);
	while (off < v->len) {
		size_t chunk = bytewise ? 1 : (off < cut ? left : rest);
		size_t inlen = chunk;

		in = v->bytes + off;
		while ((ret = smq_reader_next(&r, &in, &inlen, &got)) == 1) {
			n++;
			cr_assert(smq_packet_equal(&ref, &got), "%s cut %zu", v->name, cut);
		}
		cr_assert_eq(ret, 0, "%s cut %zu", v->name, cut);
		cr_assert_eq(inlen, 0);
		off += chunk;
	}
	cr_assert_eq(n, 1, "%s cut %zu: %d packets", v->name, cut, n);
	smq_reader_fini(&r);
}

Test(core_codec, reader_split_at_every_offset_decodes_the_same)
{
	size_t i, cut;

	for (i = 0; i < CODEC_NVECS; i++) {
		for (cut = 0; cut <= codec_vecs[i].len; cut++)
			expect_split_same(&codec_vecs[i], cut, false);
		expect_split_same(&codec_vecs[i], 0, true);
	}
}

Test(core_codec, reader_split_multibyte_length_packet)
{
	static uint8_t payload[300], buf[400];
	struct smq_packet p = { .type = SMQ_PUBLISH, .version = SMQ_V5 };
	struct codec_vec v = { "big", SMQ_V5, SMQ_PUBLISH, buf, 0 };
	long n;
	size_t cut;

	memset(payload, 'p', sizeof(payload));
	p.publish.topic = S("t");
	p.publish.payload = (struct smq_str){ payload, sizeof(payload) };
	n = smq_encode(&p, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_assert_eq(buf[1] & 0x80, 0x80, "two-byte remaining length expected");
	v.len = (uint32_t)n;
	for (cut = 0; cut <= v.len; cut++)
		expect_split_same(&v, cut, false);
	expect_split_same(&v, 0, true);
}

/* Every 5.0 vector back to back, fed in chunks of many sizes. */
Test(core_codec, reader_stream_in_any_chunk_size)
{
	static uint8_t stream[8192];
	struct smq_packet ref[CODEC_NVECS], got;
	size_t len = 0, n = 0, i, chunk;

	for (i = 0; i < CODEC_NVECS; i++) {
		const struct codec_vec *v = &codec_vecs[i];

		if (v->version != SMQ_V5 && !(v->version == 0 && v->bytes[8] == 5))
			continue;
		memcpy(stream + len, v->bytes, v->len);
		cr_assert_eq(smq_decode(v->bytes, v->len, SMQ_V5, &ref[n]), 0, "%s", v->name);
		len += v->len;
		n++;
	}
	for (chunk = 1; chunk <= len; chunk += chunk < 16 ? 1 : 37) {
		struct smq_reader r;
		size_t off = 0, k = 0;
		int ret;

		smq_reader_init(&r, 0, SMQ_V5);
		while (off < len) {
			size_t inlen = len - off < chunk ? len - off : chunk;
			const uint8_t *in = stream + off;

			off += inlen;
			while ((ret = smq_reader_next(&r, &in, &inlen, &got)) == 1) {
				cr_assert_lt(k, n);
				cr_assert(smq_packet_equal(&ref[k], &got), "chunk %zu packet %zu",
					  chunk, k);
				k++;
			}
			cr_assert_eq(ret, 0);
		}
		cr_assert_eq(k, n, "chunk %zu", chunk);
		smq_reader_fini(&r);
	}
}

/* ---- fields of decoded packets ---------------------------------------------------- */

Test(core_codec, v311_connect_fields)
{
	struct smq_packet p;

	decode_vec("v311_connect_full", &p);
	cr_assert_eq(p.version, SMQ_V311);
	cr_assert_eq(p.connect.level, 4);
	cr_assert(str_is(p.connect.proto_name, "MQTT"));
	cr_assert(p.connect.clean && p.connect.will && p.connect.will_retain);
	cr_assert_eq(p.connect.will_qos, 1);
	cr_assert_eq(p.connect.keepalive, 30);
	cr_assert(str_is(p.connect.client_id, "c1"));
	cr_assert(str_is(p.connect.will_topic, "w"));
	cr_assert(str_is(p.connect.will_payload, "bye"));
	cr_assert(p.connect.has_username && p.connect.has_password);
	cr_assert(str_is(p.connect.username, "u"));
	cr_assert(str_is(p.connect.password, "p"));
}

Test(core_codec, v31_connect_sets_version_3_and_keeps_long_client_id)
{
	struct smq_packet p;

	decode_vec("v31_connect_long_id", &p);
	cr_assert_eq(p.version, SMQ_V31);
	cr_assert(str_is(p.connect.proto_name, "MQIsdp"));
	cr_assert_eq(p.connect.client_id.len, 30);
}

Test(core_codec, v31_connect_login_flags_without_fields_read_as_empty)
{
	struct smq_packet p;

	decode_vec("v31_connect_flags_no_login", &p);
	cr_assert(p.connect.has_username && p.connect.has_password);
	cr_assert_eq(p.connect.username.len, 0);
	cr_assert_eq(p.connect.password.len, 0);
}

Test(core_codec, v5_connect_properties_and_will_properties)
{
	struct smq_packet p;
	struct smq_str k, v;
	uint32_t pos = 0;
	const struct smq_props *pr = &p.props, *w = &p.connect.will_props;

	decode_vec("v5_connect_full", &p);
	cr_assert_eq(p.version, SMQ_V5);
	cr_assert_eq(pr->session_expiry, 0x78);
	cr_assert_eq(pr->receive_max, 20);
	cr_assert_eq(pr->max_packet_size, 0x1000);
	cr_assert_eq(pr->topic_alias_max, 10);
	cr_assert_eq(pr->request_response_info, 1);
	cr_assert(SMQ_HAS(pr, SMQ_PROP_REQUEST_PROBLEM_INFO));
	cr_assert_eq(pr->request_problem_info, 0);
	cr_assert(str_is(pr->auth_method, "SCRM"));
	cr_assert_eq(pr->auth_data.len, 2);
	cr_assert(smq_props_next_user(pr, &pos, &k, &v));
	cr_assert(str_is(k, "k") && str_is(v, "v"));
	cr_assert_not(smq_props_next_user(pr, &pos, &k, &v));
	cr_assert_eq(w->will_delay, 5);
	cr_assert_eq(w->payload_format, 1);
	cr_assert_eq(w->message_expiry, 60);
	cr_assert(str_is(w->content_type, "text"));
	cr_assert(str_is(w->response_topic, "r"));
	cr_assert(str_is(w->correlation_data, "cd"));
	cr_assert_eq(p.connect.will_qos, 2);
	cr_assert(str_is(p.connect.password, "pw"));
}

Test(core_codec, v5_connack_properties)
{
	struct smq_packet p;
	const struct smq_props *pr = &p.props;

	decode_vec("v5_connack_full", &p);
	cr_assert(p.connack.session_present);
	cr_assert_eq(p.reason, 0);
	cr_assert_eq(pr->session_expiry, 10);
	cr_assert_eq(pr->receive_max, 100);
	cr_assert_eq(pr->max_qos, 1);
	cr_assert_eq(pr->retain_available, 1);
	cr_assert_eq(pr->max_packet_size, 0x4000);
	cr_assert(str_is(pr->assigned_client_id, "abc"));
	cr_assert_eq(pr->topic_alias_max, 5);
	cr_assert(str_is(pr->reason_string, "ok"));
	cr_assert_eq(pr->wildcard_sub_available, 0);
	cr_assert_eq(pr->sub_id_available, 1);
	cr_assert_eq(pr->shared_sub_available, 1);
	cr_assert_eq(pr->server_keep_alive, 30);
	cr_assert(str_is(pr->response_info, "x"));
	cr_assert(str_is(pr->server_reference, "y"));
	cr_assert(str_is(pr->auth_method, "m"));
	cr_assert(str_is(pr->auth_data, "d"));
}

Test(core_codec, v5_publish_repeated_properties_in_wire_order)
{
	struct smq_packet p;
	struct smq_str k, v;
	uint32_t pos = 0, id;

	decode_vec("v5_publish_props", &p);
	cr_assert_eq(p.publish.qos, 1);
	cr_assert_eq(p.packet_id, 9);
	cr_assert(str_is(p.publish.topic, "a/b"));
	cr_assert(str_is(p.publish.payload, "hi"));
	cr_assert_eq(p.props.topic_alias, 4);
	cr_assert(smq_props_next_user(&p.props, &pos, &k, &v));
	cr_assert(str_is(k, "a") && str_is(v, "1"));
	cr_assert(smq_props_next_user(&p.props, &pos, &k, &v));
	cr_assert(str_is(k, "b") && str_is(v, "2"));
	cr_assert_not(smq_props_next_user(&p.props, &pos, &k, &v));
	pos = 0;
	cr_assert_eq(p.props.sub_id, 5);
	cr_assert(smq_props_next_sub_id(&p.props, &pos, &id));
	cr_assert_eq(id, 5);
	cr_assert(smq_props_next_sub_id(&p.props, &pos, &id));
	cr_assert_eq(id, 128);
	cr_assert_not(smq_props_next_sub_id(&p.props, &pos, &id));
}

/* The user view spans a subscription id here; copying it must not. */
Test(core_codec, props_put_raw_copies_only_the_wanted_property)
{
	struct smq_packet p;
	uint8_t out[64];
	long n;

	decode_vec("v5_publish_props", &p);
	n = smq_props_put_raw(out, sizeof(out), p.props.user, SMQ_PROP_USER);
	cr_assert_eq(n, 14);
	cr_assert_arr_eq(out, ((uint8_t[]){ 0x26, 0, 1, 'a', 0, 1, '1',
					    0x26, 0, 1, 'b', 0, 1, '2' }), 14);
	cr_assert_eq(smq_props_put_raw(NULL, 0, p.props.user, SMQ_PROP_USER), 14);
	cr_assert_eq(smq_props_put_raw(out, 13, p.props.user, SMQ_PROP_USER),
		     -SMQ_RC_PACKET_TOO_LARGE);
}

Test(core_codec, v5_subscribe_entries_and_options)
{
	struct smq_packet p;
	struct smq_sub_entry e;
	uint32_t pos = 0;

	decode_vec("v5_subscribe", &p);
	cr_assert_eq(p.packet_id, 1);
	cr_assert_eq(p.list.count, 2);
	cr_assert_eq(p.props.sub_id, 5);
	cr_assert(smq_list_next_sub(&p, &pos, &e));
	cr_assert(str_is(e.filter, "a/+"));
	cr_assert_eq(SMQ_SUBOPT_QOS(e.opts), 1);
	cr_assert(e.opts & SMQ_SUBOPT_NO_LOCAL);
	cr_assert(e.opts & SMQ_SUBOPT_RAP);
	cr_assert_eq(SMQ_SUBOPT_RH(e.opts), 2);
	cr_assert(smq_list_next_sub(&p, &pos, &e));
	cr_assert(str_is(e.filter, "#"));
	cr_assert_eq(e.opts, 0);
	cr_assert_not(smq_list_next_sub(&p, &pos, &e));
}

Test(core_codec, v311_unsubscribe_filters_and_suback_codes)
{
	struct smq_packet p;
	struct smq_str f;
	uint32_t pos = 0;

	decode_vec("v311_unsubscribe", &p);
	cr_assert_eq(p.list.count, 2);
	cr_assert(smq_list_next_filter(&p, &pos, &f) && str_is(f, "a/b"));
	cr_assert(smq_list_next_filter(&p, &pos, &f) && str_is(f, "#"));
	cr_assert_not(smq_list_next_filter(&p, &pos, &f));
	decode_vec("v311_suback", &p);
	cr_assert_eq(p.list.count, 2);
	cr_assert_eq(p.list.raw.p[0], 0x01);
	cr_assert_eq(p.list.raw.p[1], 0x80);
}

Test(core_codec, v5_short_forms_decode_as_success_without_properties)
{
	struct smq_packet p;

	decode_vec("v5_puback_short", &p);
	cr_assert_eq(p.reason, 0);
	cr_assert_eq(p.props.present, 0);
	decode_vec("v5_puback_reason", &p);	/* remaining length 3 */
	cr_assert_eq(p.reason, SMQ_RC_NO_MATCHING_SUBSCRIBERS);
	cr_assert_eq(p.props.present, 0);
	decode_vec("v5_disconnect_short", &p);
	cr_assert_eq(p.reason, 0);
	decode_vec("v5_disconnect_reason", &p);
	cr_assert_eq(p.reason, SMQ_RC_DISCONNECT_WITH_WILL);
	decode_vec("v5_auth_short", &p);
	cr_assert_eq(p.reason, 0);
	cr_assert_eq(p.props.present, 0);
}

Test(core_codec, v31_pubrel_keeps_dup_flag)
{
	struct smq_packet p;
	uint8_t out[8];

	decode_vec("v31_pubrel_dup", &p);
	cr_assert_eq(p.flags, 0x0A);
	cr_assert_eq(smq_encode(&p, out, sizeof(out)), 4);
	cr_assert_eq(out[0], 0x6A);
}

/* ---- validation: each rule, its exact reason code ------------------------------ */

static void expect_rc(const uint8_t *b, size_t n, uint8_t version, int rc)
{
	struct smq_packet pkt;
	int got = smq_decode(b, n, version, &pkt);

	cr_assert_eq(got, rc, "got -0x%x, want -0x%x", -got, -rc);
}

#define REJECTS(name, version, rc, ...) \
	Test(core_codec, name) { expect_rc(BYTES(__VA_ARGS__), version, rc); }

#define MQTT4 0, 4, 'M', 'Q', 'T', 'T', 4
#define MQTT5 0, 4, 'M', 'Q', 'T', 'T', 5

/* fixed header */
REJECTS(type_0_is_malformed, 4, MAL, 0x00, 0x00)
REJECTS(auth_before_v5_is_malformed, 4, MAL, 0xF0, 0x00)
REJECTS(puback_reserved_flags_malformed, 4, MAL, 0x41, 2, 0, 1)
REJECTS(pingreq_reserved_flags_malformed, 4, MAL, 0xC8, 0)
REJECTS(connect_reserved_flags_malformed, 0, MAL, 0x12, 12, MQTT4, 0x02, 0, 60, 0, 0)
REJECTS(disconnect_reserved_flags_malformed, 5, MAL, 0xE1, 0)
REJECTS(pubrel_flags_must_be_0010, 4, MAL, 0x60, 2, 0, 1)
REJECTS(subscribe_flags_must_be_0010, 4, MAL, 0x80, 6, 0, 1, 0, 1, '#', 0)
REJECTS(unsubscribe_flags_must_be_0010, 4, MAL, 0xA0, 5, 0, 1, 0, 1, '#')
REJECTS(pubrel_dup_only_in_v31, 4, MAL, 0x6A, 2, 0, 1)
REJECTS(publish_qos3_malformed_MQTT_3_3_1_4, 4, MAL, 0x36, 7, 0, 1, 't', 0, 1, 'x', 'y')
REJECTS(publish_dup_with_qos0_malformed_MQTT_3_3_1_2, 5, MAL, 0x38, 4, 0, 1, 't', 0)
REJECTS(non_connect_before_connect_protocol_error, 0, PE, 0xC0, 0)

/* remaining length wrong for the type */
REJECTS(pingreq_with_body_malformed, 4, MAL, 0xC0, 1, 0)
REJECTS(pingresp_with_body_malformed, 5, MAL, 0xD0, 1, 0)
REJECTS(v311_disconnect_with_body_malformed, 4, MAL, 0xE0, 1, 0)
REJECTS(v311_puback_too_short_malformed, 4, MAL, 0x40, 1, 0)
REJECTS(v311_puback_too_long_malformed, 4, MAL, 0x40, 3, 0, 1, 0)
REJECTS(v311_pubcomp_too_long_malformed, 3, MAL, 0x70, 4, 0, 1, 0, 0)
REJECTS(v311_unsuback_too_long_malformed, 4, MAL, 0xB0, 3, 0, 1, 0)
REJECTS(v311_connack_too_long_malformed, 4, MAL, 0x20, 3, 0, 0, 0)
REJECTS(v311_connack_too_short_malformed, 4, MAL, 0x20, 1, 0)
REJECTS(v5_puback_too_short_malformed, 5, MAL, 0x40, 1, 0)
REJECTS(v5_connack_without_property_length_malformed, 5, MAL, 0x20, 2, 0, 0)
REJECTS(v5_puback_trailing_after_props_malformed, 5, MAL, 0x40, 5, 0, 1, 0, 0, 0)

/* fields running past the packet, trailing garbage */
REJECTS(topic_length_past_packet_malformed, 4, MAL, 0x30, 4, 0, 16, 'a', 'b')
REJECTS(client_id_past_packet_malformed, 0, MAL, 0x10, 13, MQTT4, 0x02, 0, 60, 0, 5, 'a')
REJECTS(connect_trailing_byte_malformed, 0, MAL, 0x10, 13, MQTT4, 0x02, 0, 60, 0, 0, 'x')
REJECTS(connect_missing_will_topic_malformed, 0, MAL, 0x10, 12, MQTT4, 0x06, 0, 60, 0, 0)
REJECTS(v311_connect_missing_password_malformed, 0, MAL,
	0x10, 15, MQTT4, 0xC2, 0, 60, 0, 0, 0, 1, 'u')
REJECTS(connect_truncated_before_keepalive_malformed, 0, MAL, 0x10, 9, MQTT4, 0x02, 0)
REJECTS(subscribe_missing_options_byte_malformed, 4, MAL, 0x82, 5, 0, 1, 0, 1, '#')
REJECTS(publish_missing_packet_id_malformed, 4, MAL, 0x32, 4, 0, 1, 't', 0)
REJECTS(v5_publish_missing_property_length_malformed, 5, MAL, 0x30, 3, 0, 1, 't')
REJECTS(v5_property_length_past_packet_malformed, 5, MAL, 0x30, 5, 0, 1, 't', 9, 1)
REJECTS(v5_property_value_truncated_malformed, 5, MAL,
	0x30, 7, 0, 1, 't', 3, 0x02, 0, 0)
REJECTS(v5_property_length_five_byte_varint_malformed, 5, MAL,
	0x30, 8, 0, 1, 't', 0x80, 0x80, 0x80, 0x80, 0x01)

/* UTF-8 [MQTT-1.5.4-1] [MQTT-1.5.4-2] */
REJECTS(topic_ill_formed_utf8_malformed, 4, MAL, 0x30, 4, 0, 2, 0xC3, 0x28)
REJECTS(topic_with_u0000_malformed, 4, MAL, 0x30, 5, 0, 3, 'a', 0, 'b')
REJECTS(topic_with_surrogate_malformed_v5, 5, MAL, 0x30, 6, 0, 3, 0xED, 0xA0, 0x80, 0)
REJECTS(client_id_overlong_utf8_malformed, 0, MAL,
	0x10, 14, MQTT4, 0x02, 0, 60, 0, 2, 0xC0, 0xAF)
REJECTS(username_bad_utf8_malformed, 0, MAL,
	0x10, 15, MQTT4, 0x82, 0, 60, 0, 0, 0, 1, 0xFF)
REJECTS(will_topic_bad_utf8_malformed, 0, MAL,
	0x10, 17, MQTT4, 0x06, 0, 60, 0, 0, 0, 1, 0x80, 0, 0)
REJECTS(subscribe_filter_bad_utf8_malformed, 4, MAL, 0x82, 6, 0, 1, 0, 1, 0xFE, 0)
REJECTS(unsubscribe_filter_with_u0000_malformed, 5, MAL, 0xA2, 6, 0, 1, 0, 0, 1, 0)
REJECTS(v5_reason_string_bad_utf8_malformed, 5, MAL,
	0x40, 8, 0, 1, 0x80, 4, 0x1F, 0, 1, 0xC1)
REJECTS(v5_user_property_value_bad_utf8_malformed, 5, MAL,
	0x30, 11, 0, 1, 't', 7, 0x26, 0, 1, 'k', 0, 1, 0xED)

/* CONNECT flags and versions */
REJECTS(connect_reserved_flag_malformed_MQTT_3_1_2_3, 0, MAL,
	0x10, 12, MQTT4, 0x03, 0, 60, 0, 0)
REJECTS(connect_will_qos_without_will_malformed, 0, MAL, 0x10, 12, MQTT4, 0x0A, 0, 60, 0, 0)
REJECTS(connect_will_retain_without_will_malformed, 0, MAL,
	0x10, 12, MQTT4, 0x22, 0, 60, 0, 0)
REJECTS(connect_will_qos3_malformed, 0, MAL,
	0x10, 18, MQTT4, 0x1E, 0, 60, 0, 0, 0, 1, 'w', 0, 1, 'x')
REJECTS(v5_connect_will_qos3_malformed, 0, MAL,
	0x10, 20, MQTT5, 0x1E, 0, 60, 0, 0, 0, 0, 0, 1, 'w', 0, 1, 'x')
REJECTS(v311_password_without_username_malformed_MQTT_3_1_2_22, 0, MAL,
	0x10, 15, MQTT4, 0x42, 0, 60, 0, 0, 0, 1, 'p')
REJECTS(v31_password_without_username_malformed, 0, MAL,
	0x10, 17, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x42, 0, 60, 0, 0, 0, 1, 'p')
REJECTS(connect_level_6_unsupported, 0, -SMQ_RC_UNSUPPORTED_VERSION,
	0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 6, 0x02, 0, 60, 0, 0)
REJECTS(connect_mqisdp_level_4_unsupported, 0, -SMQ_RC_UNSUPPORTED_VERSION,
	0x10, 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 0x02, 0, 60, 0, 0)
REJECTS(connect_mqtt_level_3_unsupported, 0, -SMQ_RC_UNSUPPORTED_VERSION,
	0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 3, 0x02, 0, 60, 0, 0)
/* a name that is not MQTT's at all gets no CONNACK: 0x82, not 0x84 */
REJECTS(connect_unknown_protocol_name_MQTT_3_1_2_1, 0, -SMQ_RC_PROTOCOL_ERROR,
	0x10, 12, 0, 4, 'M', 'Q', 'T', 'X', 4, 0x02, 0, 60, 0, 0)
REJECTS(connect_empty_protocol_name_MQTT_3_1_2_1, 0, -SMQ_RC_PROTOCOL_ERROR,
	0x10, 8, 0, 0, 4, 0x02, 0, 60, 0, 0)
REJECTS(connect_short_protocol_name_MQTT_3_1_2_1, 0, -SMQ_RC_PROTOCOL_ERROR,
	0x10, 11, 0, 3, 'M', 'Q', 'T', 4, 0x02, 0, 60, 0, 0)
REJECTS(connect_overlong_protocol_name_MQTT_3_1_2_1, 0, -SMQ_RC_PROTOCOL_ERROR,
	0x10, 13, 0, 5, 'M', 'Q', 'T', 'T', 'T', 4, 0x02, 0, 60, 0, 0)
REJECTS(connect_lowercase_protocol_name_MQTT_3_1_2_1, 0, -SMQ_RC_PROTOCOL_ERROR,
	0x10, 12, 0, 4, 'm', 'q', 't', 't', 4, 0x02, 0, 60, 0, 0)
/* control characters in names [MQTT-1.5.4-3] */
REJECTS(connect_client_id_with_control_char_MQTT_1_5_4_3, 0, -SMQ_RC_MALFORMED,
	0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 3, 'a', 0x0a, 'b')
REJECTS(connect_client_id_with_c1_control_MQTT_1_5_4_3, 0, -SMQ_RC_MALFORMED,
	0x10, 15, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 3, 'a', 0xc2, 0x85)
REJECTS(connect_user_name_with_del_MQTT_1_5_4_3, 0, -SMQ_RC_MALFORMED,
	0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x82, 0, 60, 0, 1, 'a', 0, 2, 'u', 0x7f)
REJECTS(connect_will_topic_with_control_char_MQTT_1_5_4_3, 0, -SMQ_RC_MALFORMED,
	0x10, 20, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 60, 0, 1, 'a', 0, 2, 'w', 0x1b, 0, 1, 'p')
REJECTS(v311_publish_topic_with_tab_MQTT_1_5_4_3, SMQ_V311, -SMQ_RC_MALFORMED,
	0x30, 5, 0, 3, 'a', 0x09, 'b')
REJECTS(v5_publish_topic_with_c1_control_MQTT_1_5_4_3, SMQ_V5, -SMQ_RC_MALFORMED,
	0x30, 6, 0, 3, 'a', 0xc2, 0x9f, 0)
REJECTS(v311_subscribe_filter_with_control_char_MQTT_1_5_4_3, SMQ_V311, -SMQ_RC_MALFORMED,
	0x82, 8, 0, 1, 0, 3, 'a', 0x01, '#', 0)
REJECTS(v311_unsubscribe_filter_with_control_char_MQTT_1_5_4_3, SMQ_V311, -SMQ_RC_MALFORMED,
	0xa2, 6, 0, 1, 0, 2, 'a', 0x7f)
/* zero-length filters, first or later in the list [MQTT-4.7.3-1] */
REJECTS(v311_subscribe_zero_length_filter_MQTT_4_7_3_1, SMQ_V311, -SMQ_RC_MALFORMED,
	0x82, 5, 0, 1, 0, 0, 0)
REJECTS(v5_subscribe_later_zero_length_filter_MQTT_4_7_3_1, SMQ_V5, -SMQ_RC_MALFORMED,
	0x82, 10, 0, 1, 0, 0, 1, 'a', 0, 0, 0, 0)
REJECTS(v311_unsubscribe_later_zero_length_filter_MQTT_4_7_3_1, SMQ_V311, -SMQ_RC_MALFORMED,
	0xa2, 7, 0, 1, 0, 1, 'a', 0, 0)
REJECTS(v5_subscribe_reserved_option_bits_MQTT_3_8_3_5, SMQ_V5, -SMQ_RC_MALFORMED,
	0x82, 7, 0, 1, 0, 0, 1, 'a', 0x41)
REJECTS(v5_subscribe_retain_handling_3, SMQ_V5, -SMQ_RC_PROTOCOL_ERROR,
	0x82, 7, 0, 1, 0, 0, 1, 'a', 0x30)

Test(core_codec, names_allow_non_ascii_text_but_not_controls_MQTT_1_5_4_3)
{
	/* U+00A0 (C2 A0) and U+00E9 are fine, U+0080..U+009F and C0 are not */
	static const char *ok[] = { "caf\xc3\xa9/x", "a\xc2\xa0" "b", "abcdefghijklmnop/q", "~" };
	static const char *bad[] = { "abcdefgh\x1fjklmnop", "abcdefghijklmno\x7f", "\xc2\x80",
				     "abcdefghijklmnopq\xc2\x9f", "\x01" };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		cr_assert(smq_utf8_valid_name((const uint8_t *)ok[i], strlen(ok[i])), "%zu", i);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not(smq_utf8_valid_name((const uint8_t *)bad[i], strlen(bad[i])), "%zu",
			      i);
	/* payloads keep the lenient rule */
	cr_assert(smq_utf8_valid((const uint8_t *)"a\x01", 2));
}

Test(core_codec, unsupported_version_still_reports_level_and_name)
{
	static const uint8_t b[] = { 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 6, 0x02, 0, 60, 0, 0 };
	struct smq_packet p;

	cr_assert_eq(smq_decode(b, sizeof(b), 0, &p), -SMQ_RC_UNSUPPORTED_VERSION);
	cr_assert_eq(p.type, SMQ_CONNECT);
	cr_assert_eq(p.connect.level, 6);
	cr_assert(str_is(p.connect.proto_name, "MQTT"));
}

/* a CONNECT describes its own version, whatever the connection thought */
Test(core_codec, connect_decodes_by_its_own_level)
{
	struct smq_packet p;

	decode_vec("v311_connect_min", &p);
	cr_assert_eq(p.version, SMQ_V311);
	cr_assert_eq(smq_decode(vec("v5_connect_min")->bytes, vec("v5_connect_min")->len,
				SMQ_V311, &p), 0);
	cr_assert_eq(p.version, SMQ_V5);
}

/* SUBSCRIBE / UNSUBSCRIBE payloads */
REJECTS(v311_subscribe_without_filter_protocol_error, 4, PE, 0x82, 2, 0, 1)
REJECTS(v5_subscribe_without_filter_protocol_error, 5, PE, 0x82, 3, 0, 1, 0)
REJECTS(v311_unsubscribe_without_filter_protocol_error, 4, PE, 0xA2, 2, 0, 1)
REJECTS(v5_unsubscribe_without_filter_protocol_error, 5, PE, 0xA2, 3, 0, 1, 0)
REJECTS(v311_subscribe_option_reserved_bits_malformed, 4, MAL,
	0x82, 6, 0, 1, 0, 1, '#', 0x04)
REJECTS(v311_subscribe_qos3_malformed, 4, MAL, 0x82, 6, 0, 1, 0, 1, '#', 0x03)
REJECTS(v5_subscribe_option_bit6_malformed, 5, MAL, 0x82, 7, 0, 1, 0, 0, 1, '#', 0x40)
REJECTS(v5_subscribe_option_bit7_malformed, 5, MAL, 0x82, 7, 0, 1, 0, 0, 1, '#', 0x80)
REJECTS(v5_subscribe_retain_handling_3_protocol_error, 5, PE,
	0x82, 7, 0, 1, 0, 0, 1, '#', 0x30)
REJECTS(v5_subscribe_qos3_protocol_error, 5, PE, 0x82, 7, 0, 1, 0, 0, 1, '#', 0x03)
REJECTS(v311_empty_suback_protocol_error, 4, PE, 0x90, 2, 0, 1)
REJECTS(v5_empty_unsuback_protocol_error, 5, PE, 0xB0, 3, 0, 1, 0)

/* packet identifier 0 where one is required [MQTT-2.2.1-3] */
REJECTS(publish_qos1_packet_id_0_malformed, 4, MAL, 0x32, 5, 0, 1, 't', 0, 0)
REJECTS(publish_qos2_packet_id_0_malformed, 5, MAL, 0x34, 6, 0, 1, 't', 0, 0, 0)
REJECTS(puback_packet_id_0_malformed, 4, MAL, 0x40, 2, 0, 0)
REJECTS(pubrec_packet_id_0_malformed, 5, MAL, 0x50, 2, 0, 0)
REJECTS(pubrel_packet_id_0_malformed, 4, MAL, 0x62, 2, 0, 0)
REJECTS(pubcomp_packet_id_0_malformed, 5, MAL, 0x70, 2, 0, 0)
REJECTS(subscribe_packet_id_0_malformed, 4, MAL, 0x82, 6, 0, 0, 0, 1, '#', 0)
REJECTS(unsubscribe_packet_id_0_malformed, 4, MAL, 0xA2, 5, 0, 0, 0, 1, '#')
REJECTS(suback_packet_id_0_malformed, 4, MAL, 0x90, 3, 0, 0, 0)
REJECTS(unsuback_packet_id_0_malformed, 4, MAL, 0xB0, 2, 0, 0)

/* reason codes */
REJECTS(v5_puback_undefined_reason_protocol_error, 5, PE, 0x40, 3, 0, 1, 0x05)
REJECTS(v5_pubrel_puback_only_reason_protocol_error, 5, PE, 0x62, 3, 0, 1, 0x10)
REJECTS(v5_disconnect_undefined_reason_protocol_error, 5, PE, 0xE0, 1, 0x01)
REJECTS(v5_auth_undefined_reason_protocol_error, 5, PE, 0xF0, 1, 0x87)
REJECTS(v5_suback_undefined_code_protocol_error, 5, PE, 0x90, 4, 0, 1, 0, 0x03)
REJECTS(v5_unsuback_undefined_code_protocol_error, 5, PE, 0xB0, 4, 0, 1, 0, 0x01)
REJECTS(v311_suback_undefined_code_protocol_error, 4, PE, 0x90, 3, 0, 1, 0x83)
REJECTS(v5_connack_undefined_reason_protocol_error, 5, PE, 0x20, 3, 0, 0x10, 0)
REJECTS(v311_connack_return_code_6_protocol_error, 4, PE, 0x20, 2, 0, 6)
REJECTS(connack_session_present_with_refusal_protocol_error, 4, PE, 0x20, 2, 1, 5)
REJECTS(v5_connack_session_present_with_refusal_protocol_error, 5, PE, 0x20, 3, 1, 0x87, 0)
REJECTS(connack_reserved_ack_flags_malformed_MQTT_3_2_2_1, 4, MAL, 0x20, 2, 0x02, 0)

/* properties: where they may appear (0x81, 5.0 section 2.2.2.2) */
REJECTS(v5_topic_alias_in_connect_malformed, 0, MAL,
	0x10, 16, MQTT5, 0x02, 0, 60, 3, 0x23, 0, 1, 0, 0)
REJECTS(v5_will_delay_in_connect_props_malformed, 0, MAL,
	0x10, 18, MQTT5, 0x02, 0, 60, 5, 0x18, 0, 0, 0, 1, 0, 0)
REJECTS(v5_session_expiry_in_will_props_malformed, 0, MAL,
	0x10, 24, MQTT5, 0x06, 0, 60, 0, 0, 0, 5, 0x11, 0, 0, 0, 1, 0, 1, 'w', 0, 0)
REJECTS(v5_reason_string_in_publish_malformed, 5, MAL,
	0x30, 8, 0, 1, 't', 4, 0x1F, 0, 1, 'r')
REJECTS(v5_sub_id_in_unsubscribe_malformed, 5, MAL,
	0xA2, 8, 0, 1, 2, 0x0B, 1, 0, 1, '#')
REJECTS(v5_unknown_property_id_malformed, 5, MAL, 0x30, 6, 0, 1, 't', 2, 0x05, 0)
REJECTS(v5_property_id_0_malformed, 5, MAL, 0x30, 6, 0, 1, 't', 2, 0x00, 0)
REJECTS(v5_two_byte_property_id_malformed, 5, MAL,
	0x30, 7, 0, 1, 't', 3, 0x81, 0x00, 0)

/* properties: repeated (0x82) */
REJECTS(v5_receive_max_twice_protocol_error, 0, PE,
	0x10, 19, MQTT5, 0x02, 0, 60, 6, 0x21, 0, 1, 0x21, 0, 2, 0, 0)
REJECTS(v5_sub_id_twice_in_subscribe_protocol_error, 5, PE,
	0x82, 11, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, '#', 0)
REJECTS(v5_reason_string_twice_protocol_error, 5, PE,
	0x40, 12, 0, 1, 0x80, 8, 0x1F, 0, 1, 'a', 0x1F, 0, 1, 'b')
REJECTS(v5_will_payload_format_twice_protocol_error, 0, PE,
	0x10, 23, MQTT5, 0x06, 0, 60, 0, 0, 0, 4, 0x01, 0, 0x01, 1, 0, 1, 'w', 0, 0)

Test(core_codec, v5_user_property_and_publish_sub_id_may_repeat)
{
	struct smq_packet p;

	cr_assert_eq(decode_bytes(BYTES(0x30, 22, 0, 1, 't', 18, 0x26, 0, 1, 'k', 0, 1, 'v',
					0x26, 0, 1, 'k', 0, 1, 'v', 0x0B, 1, 0x0B, 2),
				  5, &p), 0);
	cr_assert_eq(p.props.user.len, 14);
	cr_assert_eq(p.props.sub_ids.len, 4);
}

/* properties: values out of range */
REJECTS(v5_receive_max_0_protocol_error, 0, PE,
	0x10, 16, MQTT5, 0x02, 0, 60, 3, 0x21, 0, 0, 0, 0)
REJECTS(v5_max_packet_size_0_protocol_error, 5, PE,
	0x20, 8, 0, 0, 5, 0x27, 0, 0, 0, 0)
REJECTS(v5_max_qos_2_protocol_error, 5, PE, 0x20, 5, 0, 0, 2, 0x24, 2)
REJECTS(v5_retain_available_2_protocol_error, 5, PE, 0x20, 5, 0, 0, 2, 0x25, 2)
REJECTS(v5_wildcard_available_2_protocol_error, 5, PE, 0x20, 5, 0, 0, 2, 0x28, 2)
REJECTS(v5_sub_id_available_2_protocol_error, 5, PE, 0x20, 5, 0, 0, 2, 0x29, 2)
REJECTS(v5_shared_available_2_protocol_error, 5, PE, 0x20, 5, 0, 0, 2, 0x2A, 2)
REJECTS(v5_payload_format_2_protocol_error, 5, PE, 0x30, 6, 0, 1, 't', 2, 0x01, 2)
REJECTS(v5_request_problem_info_2_protocol_error, 0, PE,
	0x10, 15, MQTT5, 0x02, 0, 60, 2, 0x17, 2, 0, 0)
REJECTS(v5_request_response_info_2_protocol_error, 0, PE,
	0x10, 15, MQTT5, 0x02, 0, 60, 2, 0x19, 2, 0, 0)
/* 5.0 section 3.3.2.3.4 names 0x94 for a Topic Alias of 0 */
REJECTS(v5_topic_alias_0_topic_alias_invalid, 5, -SMQ_RC_TOPIC_ALIAS_INVALID,
	0x30, 7, 0, 1, 't', 3, 0x23, 0, 0)
REJECTS(v5_sub_id_0_protocol_error, 5, PE, 0x82, 9, 0, 1, 2, 0x0B, 0, 0, 1, '#', 0)
/* above 268435455 takes a fifth varint byte */
REJECTS(v5_sub_id_over_max_malformed, 5, MAL,
	0x30, 10, 0, 1, 't', 6, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01)
REJECTS(v5_auth_data_without_method_protocol_error, 0, PE,
	0x10, 17, MQTT5, 0x02, 0, 60, 4, 0x16, 0, 1, 'x', 0, 0)

/* ---- decode with an unknown version ----------------------------------------- */

Test(core_codec, version_0_accepts_only_connect)
{
	struct smq_packet p;

	cr_assert_eq(decode_bytes(BYTES(0x30, 3, 0, 1, 't'), 0, &p), PE);
	cr_assert_eq(decode_bytes(BYTES(0xE0, 0), 0, &p), PE);
	decode_vec("v5_connect_min", &p);
	cr_assert_eq(p.version, SMQ_V5);
}

/* ---- reader ------------------------------------------------------------------------- */

Test(core_codec, reader_returns_views_into_the_input_when_whole)
{
	const uint8_t in_buf[] = { 0x30, 5, 0, 1, 't', 'h', 'i', 0xC0, 0 };
	const uint8_t *in = in_buf;
	size_t inlen = sizeof(in_buf);
	struct smq_reader r;
	struct smq_packet p;

	smq_reader_init(&r, 0, SMQ_V311);
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), 1);
	cr_assert_eq(p.type, SMQ_PUBLISH);
	cr_assert_eq(p.publish.topic.p, in_buf + 4, "not zero-copy");
	cr_assert_eq(inlen, 2);
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), 1);
	cr_assert_eq(p.type, SMQ_PINGREQ);
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), 0);
	cr_assert_eq(r.cap, 0, "nothing should have been buffered");
	smq_reader_fini(&r);
}

Test(core_codec, reader_copies_only_a_split_packet)
{
	const uint8_t in_buf[] = { 0x30, 5, 0, 1, 't', 'h', 'i' };
	const uint8_t *in = in_buf;
	size_t inlen = 3;
	struct smq_reader r;
	struct smq_packet p;

	smq_reader_init(&r, 0, SMQ_V311);
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), 0);
	cr_assert_eq(inlen, 0);
	inlen = 4;
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), 1);
	cr_assert(str_is(p.publish.payload, "hi"));
	cr_assert(p.publish.topic.p >= r.buf && p.publish.topic.p < r.buf + r.cap);
	smq_reader_fini(&r);
}

Test(core_codec, reader_learns_version_from_connect)
{
	const struct codec_vec *c = vec("v5_connect_min");
	const uint8_t pub[] = { 0x30, 6, 0, 1, 't', 2, 0x01, 1 };
	const uint8_t *in = c->bytes;
	size_t inlen = c->len;
	struct smq_reader r;
	struct smq_packet p;

	smq_reader_init(&r, 0, 0);
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), 1);
	cr_assert_eq(r.version, SMQ_V5);
	in = pub;
	inlen = sizeof(pub);
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), 1);
	cr_assert(SMQ_HAS(&p.props, SMQ_PROP_PAYLOAD_FORMAT), "decoded as 5.0");
	smq_reader_fini(&r);
}

Test(core_codec, reader_refuses_packets_before_connect)
{
	const uint8_t pub[] = { 0x30, 3, 0, 1, 't' };
	const uint8_t *in = pub;
	size_t inlen = sizeof(pub);
	struct smq_reader r;
	struct smq_packet p;

	smq_reader_init(&r, 0, 0);
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), PE);
	smq_reader_fini(&r);
}

Test(core_codec, reader_refuses_oversize_packet_before_its_body)
{
	const uint8_t hdr[] = { 0x30, 0xE8, 0x07 };	/* remaining length 1000 */
	const uint8_t *in = hdr;
	size_t inlen = 2;
	struct smq_reader r;
	struct smq_packet p;

	smq_reader_init(&r, 100, SMQ_V311);
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), 0);
	inlen = 1;
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), -SMQ_RC_PACKET_TOO_LARGE);
	smq_reader_fini(&r);
	/* and when the header arrives in one piece */
	in = hdr;
	inlen = sizeof(hdr);
	smq_reader_init(&r, 100, SMQ_V311);
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), -SMQ_RC_PACKET_TOO_LARGE);
	smq_reader_fini(&r);
}

Test(core_codec, reader_passes_decode_errors_on)
{
	const uint8_t bad[] = { 0x30, 4, 0, 2, 0xC3, 0x28 };
	const uint8_t *in = bad;
	size_t inlen = 3;
	struct smq_reader r;
	struct smq_packet p;

	smq_reader_init(&r, 0, SMQ_V311);
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), 0);
	inlen = 3;
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &p), MAL);
	smq_reader_fini(&r);
}

Test(core_codec, reader_releases_a_huge_buffer_after_use)
{
	static uint8_t payload[200000], buf[200100];
	struct smq_packet p = { .type = SMQ_PUBLISH, .version = SMQ_V311 }, got;
	struct smq_reader r;
	const uint8_t *in = buf;
	size_t inlen;
	long n;

	p.publish.topic = S("t");
	p.publish.payload = (struct smq_str){ payload, sizeof(payload) };
	n = smq_encode(&p, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	buf[n] = 0xC0;
	buf[n + 1] = 0;
	smq_reader_init(&r, 0, SMQ_V311);
	inlen = 10;
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &got), 0);
	inlen = (size_t)n - 10;
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &got), 1);
	cr_assert_eq(got.publish.payload.len, sizeof(payload));
	cr_assert_geq(r.cap, (uint32_t)n);
	inlen = 2;
	cr_assert_eq(smq_reader_next(&r, &in, &inlen, &got), 1);
	cr_assert_eq(got.type, SMQ_PINGREQ);
	cr_assert_leq(r.cap, 65536, "the big buffer should be gone");
	smq_reader_fini(&r);
}

/* ---- encoder ---------------------------------------------------------------------- */

static void expect_encoding(const struct smq_packet *p, const uint8_t *want, size_t n)
{
	uint8_t out[256];
	long got = smq_encode(p, out, sizeof(out));

	cr_assert_eq(got, (long)n, "encoded %ld bytes, want %zu", got, n);
	cr_assert_eq(smq_encoded_size(p), (long)n);
	cr_assert_arr_eq(out, want, n);
}

Test(core_codec, encodes_spec_bytes_v311)
{
	struct smq_packet p = { .type = SMQ_CONNECT, .version = SMQ_V311 };

	p.connect.clean = true;
	p.connect.keepalive = 60;
	expect_encoding(&p, BYTES(0x10, 12, MQTT4, 0x02, 0, 60, 0, 0));
	p = (struct smq_packet){ .type = SMQ_PUBLISH, .version = SMQ_V311, .packet_id = 10 };
	p.publish.qos = 1;
	p.publish.dup = p.publish.retain = true;
	p.publish.topic = S("a/b");
	p.publish.payload = S("hi");
	expect_encoding(&p, vec("v311_publish_qos1_dup_retain")->bytes, 11);
	p = (struct smq_packet){ .type = SMQ_PUBREL, .version = SMQ_V311, .packet_id = 1 };
	expect_encoding(&p, BYTES(0x62, 2, 0, 1));
	p = (struct smq_packet){ .type = SMQ_PINGREQ, .version = SMQ_V311 };
	expect_encoding(&p, BYTES(0xC0, 0));
}

Test(core_codec, encodes_v31_connect_with_mqisdp)
{
	struct smq_packet p = { .type = SMQ_CONNECT, .version = SMQ_V31 };

	p.connect.clean = true;
	p.connect.keepalive = 60;
	p.connect.client_id = S("cid");
	expect_encoding(&p, vec("v31_connect")->bytes, vec("v31_connect")->len);
}

/* 5.0 sections 3.4.2.1, 3.14.2.1, 3.15.2.1: reason 0 and no properties may
 * be left out; the encoder always takes the shortest form. */
Test(core_codec, v5_encoder_emits_short_forms)
{
	struct smq_packet p = { .type = SMQ_PUBACK, .version = SMQ_V5, .packet_id = 1 };

	expect_encoding(&p, BYTES(0x40, 2, 0, 1));
	p.reason = SMQ_RC_NO_MATCHING_SUBSCRIBERS;
	expect_encoding(&p, BYTES(0x40, 3, 0, 1, 0x10));
	p.props.reason_string = S("r");
	SMQ_SET(&p.props, SMQ_PROP_REASON_STRING);
	expect_encoding(&p, BYTES(0x40, 8, 0, 1, 0x10, 4, 0x1F, 0, 1, 'r'));
	p.reason = 0;
	expect_encoding(&p, BYTES(0x40, 8, 0, 1, 0x00, 4, 0x1F, 0, 1, 'r'));

	p = (struct smq_packet){ .type = SMQ_DISCONNECT, .version = SMQ_V5 };
	expect_encoding(&p, BYTES(0xE0, 0));
	p.reason = SMQ_RC_DISCONNECT_WITH_WILL;
	expect_encoding(&p, BYTES(0xE0, 1, 0x04));

	p = (struct smq_packet){ .type = SMQ_AUTH, .version = SMQ_V5 };
	expect_encoding(&p, BYTES(0xF0, 0));
	p.reason = SMQ_RC_CONTINUE_AUTH;
	expect_encoding(&p, BYTES(0xF0, 2, 0x18, 0));
}

Test(core_codec, v3_acks_carry_no_reason_or_properties)
{
	struct smq_packet p = { .type = SMQ_PUBACK, .version = SMQ_V311, .packet_id = 7,
				.reason = 0x80 };

	SMQ_SET(&p.props, SMQ_PROP_REASON_STRING);
	p.props.reason_string = S("x");
	expect_encoding(&p, BYTES(0x40, 2, 0, 7));
	p.type = SMQ_DISCONNECT;
	expect_encoding(&p, BYTES(0xE0, 0));
}

Test(core_codec, encoder_reports_small_buffer_as_too_large)
{
	struct smq_packet p = { .type = SMQ_PUBLISH, .version = SMQ_V311 };
	uint8_t out[16];

	p.publish.topic = S("a/b");
	p.publish.payload = S("0123456789");
	cr_assert_eq(smq_encoded_size(&p), 17);
	cr_assert_eq(smq_encode(&p, out, 16), -SMQ_RC_PACKET_TOO_LARGE);
}

Test(core_codec, encoder_refuses_what_cannot_be_represented)
{
	static uint8_t big[70000];
	struct smq_packet p = { .type = SMQ_PUBLISH, .version = SMQ_V5 };
	uint8_t out[64];

	p.publish.topic = (struct smq_str){ big, sizeof(big) };
	cr_assert_eq(smq_encoded_size(&p), MAL, "topic over 65535 bytes");
	p.publish.topic = S("t");
	p.publish.qos = 3;
	cr_assert_eq(smq_encode(&p, out, sizeof(out)), MAL, "QoS 3");
	p.publish.qos = 0;
	SMQ_SET(&p.props, SMQ_PROP_SESSION_EXPIRY);
	cr_assert_eq(smq_encode(&p, out, sizeof(out)), MAL, "property not valid in PUBLISH");
	p = (struct smq_packet){ .type = SMQ_AUTH, .version = SMQ_V311 };
	cr_assert_eq(smq_encode(&p, out, sizeof(out)), MAL, "AUTH before 5.0");
	p = (struct smq_packet){ .type = SMQ_PINGREQ, .version = 7 };
	cr_assert_eq(smq_encode(&p, out, sizeof(out)), -SMQ_RC_UNSUPPORTED_VERSION);
	p = (struct smq_packet){ .type = 0, .version = SMQ_V5 };
	cr_assert_eq(smq_encode(&p, out, sizeof(out)), MAL);
}

Test(core_codec, props_put_helpers_build_raw_lists)
{
	uint8_t raw[32], small[4];
	long n1, n2;
	struct smq_props pr = { 0 };
	struct smq_str k, v;
	uint32_t pos = 0, id;

	n1 = smq_props_put_user(raw, sizeof(raw), S("key"), S("val"));
	cr_assert_eq(n1, 11);
	cr_assert_eq(smq_props_put_user(small, sizeof(small), S("key"), S("val")),
		     -SMQ_RC_PACKET_TOO_LARGE);
	n2 = smq_props_put_sub_id(raw + n1, sizeof(raw) - (size_t)n1, 16384);
	cr_assert_eq(n2, 4);
	cr_assert_eq(smq_props_put_sub_id(small, 2, 16384), -SMQ_RC_PACKET_TOO_LARGE);
	SMQ_SET(&pr, SMQ_PROP_USER);
	SMQ_SET(&pr, SMQ_PROP_SUBSCRIPTION_ID);
	pr.user = (struct smq_str){ raw, (uint32_t)n1 };
	pr.sub_ids = (struct smq_str){ raw + n1, (uint32_t)n2 };
	cr_assert(smq_props_next_user(&pr, &pos, &k, &v));
	cr_assert(str_is(k, "key") && str_is(v, "val"));
	pos = 0;
	cr_assert(smq_props_next_sub_id(&pr, &pos, &id));
	cr_assert_eq(id, 16384);
}

/* ---- round trips: every type, every version, every property ------------------------ */

struct rt_store {
	uint8_t users[64], users_w[64], sub_ids[16];
	struct smq_sub_entry entries[3];
	struct smq_str filters[2];
};

static void all_user_props(struct smq_props *pr, uint8_t *buf)
{
	long n = smq_props_put_user(buf, 64, S("k1"), S("v1"));

	n += smq_props_put_user(buf + n, (size_t)(64 - n), S("k2"), S("\xC3\xA9"));
	pr->user = (struct smq_str){ buf, (uint32_t)n };
	SMQ_SET(pr, SMQ_PROP_USER);
}

#define PROP(pr, id, field, val) do { (pr)->field = (val); SMQ_SET(pr, id); } while (0)

static void connect_props(struct smq_props *pr, struct rt_store *st)
{
	PROP(pr, SMQ_PROP_SESSION_EXPIRY, session_expiry, 0xFFFFFFFFu);
	PROP(pr, SMQ_PROP_RECEIVE_MAX, receive_max, 65535);
	PROP(pr, SMQ_PROP_MAX_PACKET_SIZE, max_packet_size, 1u << 20);
	PROP(pr, SMQ_PROP_TOPIC_ALIAS_MAX, topic_alias_max, 0);
	PROP(pr, SMQ_PROP_REQUEST_RESPONSE_INFO, request_response_info, 1);
	PROP(pr, SMQ_PROP_REQUEST_PROBLEM_INFO, request_problem_info, 0);
	PROP(pr, SMQ_PROP_AUTH_METHOD, auth_method, S("SCRAM-SHA-1"));
	PROP(pr, SMQ_PROP_AUTH_DATA, auth_data, S("\x00\x01\x02"));
	all_user_props(pr, st->users);
}

static void will_props(struct smq_props *pr, struct rt_store *st)
{
	PROP(pr, SMQ_PROP_WILL_DELAY, will_delay, 30);
	PROP(pr, SMQ_PROP_PAYLOAD_FORMAT, payload_format, 1);
	PROP(pr, SMQ_PROP_MESSAGE_EXPIRY, message_expiry, 3600);
	PROP(pr, SMQ_PROP_CONTENT_TYPE, content_type, S("text/plain"));
	PROP(pr, SMQ_PROP_RESPONSE_TOPIC, response_topic, S("resp/t"));
	PROP(pr, SMQ_PROP_CORRELATION_DATA, correlation_data, S("\xFF\x00"));
	all_user_props(pr, st->users_w);
}

static void connack_props(struct smq_props *pr, struct rt_store *st)
{
	PROP(pr, SMQ_PROP_SESSION_EXPIRY, session_expiry, 7);
	PROP(pr, SMQ_PROP_RECEIVE_MAX, receive_max, 10);
	PROP(pr, SMQ_PROP_MAX_QOS, max_qos, 1);
	PROP(pr, SMQ_PROP_RETAIN_AVAILABLE, retain_available, 0);
	PROP(pr, SMQ_PROP_MAX_PACKET_SIZE, max_packet_size, 268435460u);
	PROP(pr, SMQ_PROP_ASSIGNED_CLIENT_ID, assigned_client_id, S("auto-1"));
	PROP(pr, SMQ_PROP_TOPIC_ALIAS_MAX, topic_alias_max, 16);
	PROP(pr, SMQ_PROP_REASON_STRING, reason_string, S("welcome"));
	PROP(pr, SMQ_PROP_WILDCARD_SUB_AVAILABLE, wildcard_sub_available, 1);
	PROP(pr, SMQ_PROP_SUB_ID_AVAILABLE, sub_id_available, 1);
	PROP(pr, SMQ_PROP_SHARED_SUB_AVAILABLE, shared_sub_available, 0);
	PROP(pr, SMQ_PROP_SERVER_KEEP_ALIVE, server_keep_alive, 120);
	PROP(pr, SMQ_PROP_RESPONSE_INFO, response_info, S("ri"));
	PROP(pr, SMQ_PROP_SERVER_REFERENCE, server_reference, S("other:1883"));
	PROP(pr, SMQ_PROP_AUTH_METHOD, auth_method, S("m"));
	PROP(pr, SMQ_PROP_AUTH_DATA, auth_data, S(""));
	all_user_props(pr, st->users);
}

static void publish_props(struct smq_props *pr, struct rt_store *st)
{
	long n;

	PROP(pr, SMQ_PROP_PAYLOAD_FORMAT, payload_format, 0);
	PROP(pr, SMQ_PROP_MESSAGE_EXPIRY, message_expiry, 1);
	PROP(pr, SMQ_PROP_TOPIC_ALIAS, topic_alias, 65535);
	PROP(pr, SMQ_PROP_CONTENT_TYPE, content_type, S("application/json"));
	PROP(pr, SMQ_PROP_RESPONSE_TOPIC, response_topic, S("r"));
	PROP(pr, SMQ_PROP_CORRELATION_DATA, correlation_data, S("id-42"));
	all_user_props(pr, st->users);
	n = smq_props_put_sub_id(st->sub_ids, 16, 1);
	n += smq_props_put_sub_id(st->sub_ids + n, (size_t)(16 - n), SMQ_MAX_REMAINING);
	pr->sub_ids = (struct smq_str){ st->sub_ids, (uint32_t)n };
	PROP(pr, SMQ_PROP_SUBSCRIPTION_ID, sub_id, 1);
}

static void reason_props(struct smq_props *pr, struct rt_store *st)
{
	PROP(pr, SMQ_PROP_REASON_STRING, reason_string, S("because"));
	all_user_props(pr, st->users);
}

static struct smq_packet *next_case(struct smq_packet *out, size_t *n, uint8_t type, uint8_t v)
{
	struct smq_packet *p = &out[(*n)++];

	*p = (struct smq_packet){ .type = type, .version = v };
	return p;
}

/* Fill out[] with packets of @v covering every type and form; returns count. */
static size_t build_cases(uint8_t v, struct smq_packet *out, struct rt_store *st,
			  const uint8_t *big, uint32_t big_len)
{
	static const uint8_t suback_codes[] = { 0x00, 0x01, 0x02, 0x80 };
	static const uint8_t unsuback_codes[] = { 0x00, 0x11 };
	bool v5 = v == SMQ_V5;
	size_t n = 0, i;
	struct smq_packet *p;

	st->entries[0] = (struct smq_sub_entry){ S("a/+/c"), 2 };
	st->entries[1] = (struct smq_sub_entry){ S("#"), v5 ? 0x2C : 0 };
	st->entries[2] = (struct smq_sub_entry){ S("$share/g/x"), v5 ? 0x11 : 1 };
	st->filters[0] = S("a/+/c");
	st->filters[1] = S("#");

#define NEXT(t) (p = next_case(out, &n, (t), v))
	NEXT(SMQ_CONNECT)->connect.client_id = S("");
	NEXT(SMQ_CONNECT);
	p->connect.clean = true;
	p->connect.keepalive = 65535;
	p->connect.client_id = S("client-\xE2\x82\xAC");
	p->connect.will = p->connect.will_retain = true;
	p->connect.will_qos = 2;
	p->connect.will_topic = S("will/t");
	p->connect.will_payload = (struct smq_str){ big, 1000 };
	p->connect.has_username = p->connect.has_password = true;
	p->connect.username = S("user");
	p->connect.password = S("\x00\xFFpw");
	if (v5) {
		connect_props(&p->props, st);
		will_props(&p->connect.will_props, st);
	}
	NEXT(SMQ_CONNACK)->connack.session_present = true;
	if (v == SMQ_V31)
		p->connack.session_present = false;	/* 3.1 has no such flag */
	if (v5)
		connack_props(&p->props, st);
	NEXT(SMQ_CONNACK)->reason = v5 ? SMQ_RC_NOT_AUTHORIZED : SMQ_CONNACK_NOT_AUTHORIZED;
	for (i = 0; i < 3; i++) {
		NEXT(SMQ_PUBLISH)->publish.qos = (uint8_t)i;
		p->publish.topic = S("sensors/temp");
		p->publish.payload = S("21.5");
		p->publish.retain = i == 1;
		p->publish.dup = i == 2;
		p->packet_id = i ? (uint16_t)(0xFFFF - i) : 0;
		if (v5 && i == 1)
			publish_props(&p->props, st);
	}
	NEXT(SMQ_PUBLISH)->publish.topic = S("big");	/* 2-byte remaining length */
	p->publish.payload = (struct smq_str){ big, 300 };
	NEXT(SMQ_PUBLISH)->publish.topic = S("bigger");	/* 3-byte */
	p->publish.payload = (struct smq_str){ big, 20000 };
	NEXT(SMQ_PUBLISH)->publish.topic = S("biggest");	/* 4-byte */
	p->publish.payload = (struct smq_str){ big, big_len };
	for (i = SMQ_PUBACK; i <= SMQ_PUBCOMP; i++) {
		uint8_t err = i == SMQ_PUBREL || i == SMQ_PUBCOMP ? 0x92 : 0x97;

		NEXT((uint8_t)i)->packet_id = 1;
		if (!v5)
			continue;
		NEXT((uint8_t)i)->packet_id = 2;
		p->reason = err;
		NEXT((uint8_t)i)->packet_id = 3;
		p->reason = err;
		reason_props(&p->props, st);
		NEXT((uint8_t)i)->packet_id = 4;	/* success with properties */
		reason_props(&p->props, st);
	}
	NEXT(SMQ_SUBSCRIBE)->packet_id = 77;
	p->list.entries = st->entries;
	p->list.count = 3;
	if (v5) {
		PROP(&p->props, SMQ_PROP_SUBSCRIPTION_ID, sub_id, 268435455u);
		all_user_props(&p->props, st->users);
	}
	NEXT(SMQ_SUBACK)->packet_id = 77;
	p->list.raw = (struct smq_str){ suback_codes, 4 };
	p->list.count = 4;
	if (v5)
		reason_props(&p->props, st);
	NEXT(SMQ_UNSUBSCRIBE)->packet_id = 78;
	p->list.filters = st->filters;
	p->list.count = 2;
	if (v5)
		all_user_props(&p->props, st->users);
	NEXT(SMQ_UNSUBACK)->packet_id = 78;
	if (v5) {
		p->list.raw = (struct smq_str){ unsuback_codes, 2 };
		p->list.count = 2;
		reason_props(&p->props, st);
	}
	NEXT(SMQ_PINGREQ);
	NEXT(SMQ_PINGRESP);
	NEXT(SMQ_DISCONNECT);
	if (v5) {
		NEXT(SMQ_DISCONNECT)->reason = SMQ_RC_SESSION_TAKEN_OVER;
		NEXT(SMQ_DISCONNECT)->reason = SMQ_RC_USE_ANOTHER_SERVER;
		PROP(&p->props, SMQ_PROP_SESSION_EXPIRY, session_expiry, 0);
		PROP(&p->props, SMQ_PROP_SERVER_REFERENCE, server_reference, S("b:1883"));
		reason_props(&p->props, st);
		NEXT(SMQ_AUTH);
		NEXT(SMQ_AUTH)->reason = SMQ_RC_CONTINUE_AUTH;
		NEXT(SMQ_AUTH)->reason = SMQ_RC_REAUTHENTICATE;
		PROP(&p->props, SMQ_PROP_AUTH_METHOD, auth_method, S("SCRAM-SHA-1"));
		PROP(&p->props, SMQ_PROP_AUTH_DATA, auth_data, S("nonce"));
		reason_props(&p->props, st);
	}
#undef NEXT
	return n;
}

static void round_trip_version(uint8_t v)
{
	static struct smq_packet cases[64];
	static struct rt_store st;
	static uint8_t out[2100000 + 64];
	static uint8_t big[2100000];
	size_t n, i;

	memset(big, 'b', sizeof(big));
	n = build_cases(v, cases, &st, big, sizeof(big));
	for (i = 0; i < n; i++) {
		struct smq_packet *p = &cases[i], back;
		long size = smq_encoded_size(p), got;
		uint32_t hl, rem;

		cr_assert_gt(size, 0, "v%d case %zu (%s): size %ld", v, i,
			     smq_ptype_name(p->type), size);
		got = smq_encode(p, out, (size_t)size);
		cr_assert_eq(got, size, "v%d case %zu: encoded %ld of %ld", v, i, got, size);
		cr_assert_eq(smq_encode(p, out, (size_t)size - 1), -SMQ_RC_PACKET_TOO_LARGE);
		got = smq_encode(p, out, (size_t)size);
		cr_assert_eq(smq_frame(out, (size_t)got, 0, &hl, &rem), 0);
		cr_assert_eq(hl, 1u + (uint32_t)smq_varint_size(rem), "shortest length form");
		cr_assert_eq(smq_decode(out, (size_t)got, v, &back), 0, "v%d case %zu (%s)", v,
			     i, smq_ptype_name(p->type));
		cr_assert(smq_packet_equal(p, &back), "v%d case %zu (%s) differs", v, i,
			  smq_ptype_name(p->type));
		cr_assert(smq_packet_equal(&back, p));
	}
}

Test(core_codec, round_trip_every_packet_v31)
{
	round_trip_version(SMQ_V31);
}

Test(core_codec, round_trip_every_packet_v311)
{
	round_trip_version(SMQ_V311);
}

Test(core_codec, round_trip_every_packet_v5_with_all_properties)
{
	round_trip_version(SMQ_V5);
}

/* encode(decode(x)) decodes to the same packet, for every known-good vector,
 * and encoding that again gives the same bytes (the encoding is canonical). */
Test(core_codec, reencoding_decoded_packets_is_stable)
{
	struct smq_packet a, b;
	uint8_t out[512], out2[512];
	long n, n2;
	size_t i;

	for (i = 0; i < CODEC_NVECS; i++) {
		const struct codec_vec *v = &codec_vecs[i];

		cr_assert_eq(smq_decode(v->bytes, v->len, v->version, &a), 0);
		n = smq_encode(&a, out, sizeof(out));
		cr_assert_eq(n, smq_encoded_size(&a), "%s", v->name);
		cr_assert_leq(n, (long)v->len + 6, "%s", v->name);
		cr_assert_eq(smq_decode(out, (size_t)n, v->version, &b), 0, "%s", v->name);
		cr_assert(smq_packet_equal(&a, &b), "%s", v->name);
		n2 = smq_encode(&b, out2, sizeof(out2));
		cr_assert_eq(n2, n, "%s", v->name);
		cr_assert_arr_eq(out, out2, (size_t)n, "%s: encoding is not canonical", v->name);
	}
}

Test(core_codec, packet_equal_sees_differences)
{
	struct smq_packet a, b;

	decode_vec("v5_publish_props", &a);
	decode_vec("v5_publish_props", &b);
	cr_assert(smq_packet_equal(&a, &b));
	b.props.topic_alias = 5;
	cr_assert_not(smq_packet_equal(&a, &b));
	decode_vec("v5_publish_props", &b);
	b.props.user.len -= 7;	/* drop the last user property */
	cr_assert_not(smq_packet_equal(&a, &b));
	decode_vec("v5_publish_props", &b);
	b.publish.payload.len = 1;
	cr_assert_not(smq_packet_equal(&a, &b));
}

/* ---- names ----------------------------------------------------------------------- */

Test(core_codec, names_for_logs)
{
	unsigned i;

	cr_assert_str_eq(smq_ptype_name(SMQ_PUBLISH), "PUBLISH");
	cr_assert_str_eq(smq_ptype_name(SMQ_AUTH), "AUTH");
	cr_assert_str_eq(smq_ptype_name(200), "UNKNOWN");
	cr_assert_str_eq(smq_rc_name(SMQ_RC_MALFORMED), "MALFORMED_PACKET");
	cr_assert_str_eq(smq_rc_name(SMQ_RC_WILDCARD_SUBS_NOT_SUPPORTED),
			 "WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED");
	cr_assert_str_eq(smq_rc_name(0x03), "UNKNOWN");
	for (i = 0; i < 256; i++)
		cr_assert_not_null(smq_rc_name((uint8_t)i));
}

/* A peer's declared length is not a promise: a 5-byte header announcing a
 * 256 MB PUBLISH must not make the reader allocate 256 MB before the bytes
 * arrive (the client library reads with max_packet 0, the protocol limit). */
Test(core_codec, reader_grows_with_arriving_bytes_not_declared_length)
{
	static const uint8_t hdr[] = { 0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01, 't', 'x' };
	struct smq_reader r;
	struct smq_packet pkt;
	const uint8_t *in = hdr;
	size_t n = sizeof(hdr);

	smq_reader_init(&r, 0, SMQ_V311);
	cr_assert_eq(smq_reader_next(&r, &in, &n, &pkt), 0, "incomplete packet");
	cr_assert_eq(n, 0);
	cr_assert_leq(r.cap, 4096u, "reserved %u bytes for 9 received", r.cap);
	smq_reader_fini(&r);
}
