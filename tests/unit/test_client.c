/* test_client.c - the client core driven by scripted server bytes.
 *
 * Each test plays the server: it builds packets with smq_encode(), feeds
 * them, and checks what the client wrote (decoded, or byte for byte where
 * the exact encoding is the point) and the events it raised. Time is fake.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/client.h"
#include "core/codec.h"

static uint64_t t_now = 1000;

/* ---- output capture ---------------------------------------------------- */

static uint8_t obuf[1 << 16];
static size_t olen, opos;

/* Move everything the client has queued into obuf (after what is left). */
static void grab(struct smq_client *c)
{
	const uint8_t *p;
	size_t n;

	memmove(obuf, obuf + opos, olen - opos);
	olen -= opos;
	opos = 0;
	smq_client_out(c, &p, &n);
	cr_assert_leq(olen + n, sizeof(obuf));
	if (n)
		memcpy(obuf + olen, p, n);
	olen += n;
	smq_client_out_consumed(c, n);
}

/* The next packet the client wrote; decoded for @version (0 for CONNECT). */
static void expect_out(struct smq_client *c, uint8_t version, uint8_t type,
		       struct smq_packet *pkt)
{
	uint32_t hdr, rem;

	if (opos >= olen)
		grab(c);
	cr_assert_lt(opos, olen, "expected %s, client wrote nothing", smq_ptype_name(type));
	cr_assert_eq(smq_frame(obuf + opos, olen - opos, 0, &hdr, &rem), 0);
	cr_assert_leq(opos + hdr + rem, olen);
	cr_assert_eq(smq_decode(obuf + opos, hdr + rem, version, pkt), 0,
		     "client wrote an invalid packet");
	cr_assert_eq(pkt->type, type, "expected %s, got %s", smq_ptype_name(type),
		     smq_ptype_name(pkt->type));
	opos += hdr + rem;
}

static void expect_quiet(struct smq_client *c)
{
	grab(c);
	cr_assert_eq(olen - opos, 0, "client wrote %zu unexpected bytes", olen - opos);
}

/* ---- server side ------------------------------------------------------- */

static int feed_pkt(struct smq_client *c, const struct smq_packet *pkt)
{
	uint8_t buf[4096];
	long n = smq_encode(pkt, buf, sizeof(buf));

	cr_assert_gt(n, 0, "test packet does not encode: %ld", n);
	return smq_client_feed(c, buf, (size_t)n, t_now);
}

static void send_connack(struct smq_client *c, uint8_t version, bool sp, uint8_t rc,
			 const struct smq_props *props)
{
	struct smq_packet p = { .type = SMQ_CONNACK, .version = version, .reason = rc };

	p.connack.session_present = sp;
	if (props)
		p.props = *props;
	feed_pkt(c, &p);
}

static void send_ack(struct smq_client *c, uint8_t version, uint8_t type, uint16_t id,
		     uint8_t rc)
{
	struct smq_packet p = { .type = type, .version = version, .packet_id = id, .reason = rc };

	if (type == SMQ_PUBREL)
		p.flags = 2;
	cr_assert_eq(feed_pkt(c, &p), 0);
}

static int send_publish(struct smq_client *c, uint8_t version, const char *topic,
			const char *payload, uint8_t qos, uint16_t id, bool dup)
{
	struct smq_packet p = { .type = SMQ_PUBLISH, .version = version, .packet_id = id };

	p.flags = (uint8_t)(dup << 3 | qos << 1);
	p.publish.qos = qos;
	p.publish.dup = dup;
	p.publish.topic = (struct smq_str){ (const uint8_t *)topic, (uint32_t)strlen(topic) };
	p.publish.payload = (struct smq_str){ (const uint8_t *)payload, (uint32_t)strlen(payload) };
	return feed_pkt(c, &p);
}

static void expect_event(struct smq_client *c, enum smq_client_event_type type,
			 struct smq_client_event *ev)
{
	cr_assert(smq_client_next_event(c, ev), "expected %s, no event",
		  smq_client_event_name(type));
	cr_assert_eq(ev->type, type, "expected %s, got %s", smq_client_event_name(type),
		     smq_client_event_name(ev->type));
}

static void expect_no_event(struct smq_client *c)
{
	struct smq_client_event ev;

	cr_assert_not(smq_client_next_event(c, &ev), "unexpected %s",
		      smq_client_event_name(ev.type));
}

static struct smq_client *make(uint8_t version, bool clean, uint16_t keepalive)
{
	struct smq_client_opts o = {
		.version = version, .client_id = "c1", .clean = clean, .keepalive = keepalive,
	};
	struct smq_client *c = smq_client_new(&o);

	cr_assert_not_null(c);
	olen = opos = 0;
	return c;
}

/* CONNECT, then the server's CONNACK (session present @sp). */
static void handshake(struct smq_client *c, uint8_t version, bool sp,
		      const struct smq_props *props)
{
	struct smq_packet p;
	struct smq_client_event ev;

	cr_assert_eq(smq_client_connect(c, t_now), 0);
	expect_out(c, 0, SMQ_CONNECT, &p);
	send_connack(c, version, sp, 0, props);
	cr_assert_eq(smq_client_state(c), SMQ_CLIENT_CONNECTED);
	expect_event(c, SMQ_CLIENT_EV_CONNACK, &ev);
	cr_assert_eq(ev.session_present, sp);
}

static struct smq_client *connected(uint8_t version)
{
	struct smq_client *c = make(version, true, 0);

	handshake(c, version, false, NULL);
	return c;
}

static struct smq_str S(const char *s)
{
	return (struct smq_str){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

/* ---- CONNECT bytes ----------------------------------------------------- */

static void check_connect_bytes(uint8_t version, const uint8_t *want, size_t n)
{
	struct smq_client *c = make(version, true, 60);

	cr_assert_eq(smq_client_connect(c, t_now), 0);
	grab(c);
	cr_assert_eq(olen, n, "CONNECT is %zu bytes, want %zu", olen, n);
	cr_assert_arr_eq(obuf, want, n);
	cr_assert_eq(smq_client_state(c), SMQ_CLIENT_CONNECTING);
	smq_client_free(c);
}

Test(core_client, connect_bytes_v31_use_mqisdp_level_3)
{
	static const uint8_t want[] = { 0x10, 0x10, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02,
					0, 60, 0, 2, 'c', '1' };

	check_connect_bytes(SMQ_V31, want, sizeof(want));
}

Test(core_client, connect_bytes_v311_use_mqtt_level_4)
{
	static const uint8_t want[] = { 0x10, 0x0E, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60,
					0, 2, 'c', '1' };

	check_connect_bytes(SMQ_V311, want, sizeof(want));
}

Test(core_client, connect_bytes_v5_carry_empty_properties)
{
	static const uint8_t want[] = { 0x10, 0x0F, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60,
					0, 0, 2, 'c', '1' };

	check_connect_bytes(SMQ_V5, want, sizeof(want));
}

Test(core_client, connect_bytes_with_will_and_credentials)
{
	struct smq_str pw = S("p");
	struct smq_client_will will = { .topic = "w", .payload = S("bye"), .qos = 1, .retain = true };
	struct smq_client_opts o = { .version = SMQ_V311, .client_id = "c1", .clean = true,
				     .keepalive = 60, .username = "u", .password = &pw,
				     .will = &will };
	static const uint8_t want[] = { 0x10, 0x1C, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xEE, 0, 60,
					0, 2, 'c', '1', 0, 1, 'w', 0, 3, 'b', 'y', 'e',
					0, 1, 'u', 0, 1, 'p' };
	struct smq_client *c = smq_client_new(&o);

	cr_assert_not_null(c);
	olen = opos = 0;
	cr_assert_eq(smq_client_connect(c, t_now), 0);
	grab(c);
	cr_assert_eq(olen, sizeof(want));
	cr_assert_arr_eq(obuf, want, sizeof(want));
	smq_client_free(c);
}

Test(core_client, connect_v5_announces_session_expiry_and_limits)
{
	struct smq_client_opts o = { .version = SMQ_V5, .client_id = "c1", .session_expiry = 300,
				     .receive_max = 7, .max_packet_size = 4096 };
	struct smq_client *c = smq_client_new(&o);
	struct smq_packet p;

	olen = opos = 0;
	cr_assert_eq(smq_client_connect(c, t_now), 0);
	expect_out(c, 0, SMQ_CONNECT, &p);
	cr_assert_not(p.connect.clean);
	cr_assert_eq(p.props.session_expiry, 300);
	cr_assert_eq(p.props.receive_max, 7);
	cr_assert_eq(p.props.max_packet_size, 4096);
	smq_client_free(c);
}

Test(core_client, options_the_protocol_forbids_are_refused)
{
	struct smq_str pw = S("p");
	struct smq_client_opts v31_empty = { .version = SMQ_V31, .clean = true };
	struct smq_client_opts v31_long = { .version = SMQ_V31, .clean = true,
					    .client_id = "123456789012345678901234" };
	struct smq_client_opts v311_persist_empty = { .version = SMQ_V311, .clean = false };
	struct smq_client_opts v311_pw_only = { .version = SMQ_V311, .clean = true,
						.client_id = "x", .password = &pw };
	struct smq_client_opts bad_version = { .version = 6, .client_id = "x" };
	struct smq_client_will will = { .topic = "a/#" };
	struct smq_client_opts bad_will = { .version = SMQ_V311, .client_id = "x", .will = &will };
	struct smq_client_opts v5_persist_empty = { .version = SMQ_V5, .clean = false };
	struct smq_client *c;

	errno = 0;
	cr_assert_null(smq_client_new(&v31_empty));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(smq_client_new(&v31_long));
	cr_assert_null(smq_client_new(&v311_persist_empty));	/* [MQTT-3.1.3-7] */
	cr_assert_null(smq_client_new(&v311_pw_only));		/* [MQTT-3.1.2-22] */
	cr_assert_null(smq_client_new(&bad_version));
	cr_assert_null(smq_client_new(&bad_will));
	c = smq_client_new(&v5_persist_empty);	/* 5.0: the server assigns an id */
	cr_assert_not_null(c);
	smq_client_free(c);
}

/* ---- CONNACK ----------------------------------------------------------- */

Test(core_client, refused_connack_ends_with_mapped_error)
{
	struct smq_client *c = make(SMQ_V311, true, 0);
	struct smq_client_event ev;
	struct smq_packet p;

	smq_client_connect(c, t_now);
	expect_out(c, 0, SMQ_CONNECT, &p);
	send_connack(c, SMQ_V311, false, SMQ_CONNACK_NOT_AUTHORIZED, NULL);
	cr_assert_eq(smq_client_state(c), SMQ_CLIENT_CLOSED);
	cr_assert_eq(smq_client_error(c), -SMQ_RC_NOT_AUTHORIZED);
	expect_event(c, SMQ_CLIENT_EV_CONNACK, &ev);
	cr_assert_eq(ev.reason, SMQ_CONNACK_NOT_AUTHORIZED);
	expect_event(c, SMQ_CLIENT_EV_ERROR, &ev);
	cr_assert_eq(ev.error, -SMQ_RC_NOT_AUTHORIZED);
	cr_assert_eq(smq_client_publish(c, "t", S("x"), 0, false, NULL), -ENOTCONN);
	smq_client_free(c);
}

/* Found by fuzz_client: after a refusing 5.0 CONNACK the client sent a
 * DISCONNECT carrying the server's CONNACK code (0x85), which is no
 * DISCONNECT code. The server closes anyway: send nothing. */
Test(core_client, v5_refused_connack_sends_nothing_back)
{
	struct smq_client *c = make(SMQ_V5, true, 0);
	struct smq_packet p;

	smq_client_connect(c, t_now);
	expect_out(c, 0, SMQ_CONNECT, &p);
	send_connack(c, SMQ_V5, false, SMQ_RC_CLIENT_ID_INVALID, NULL);
	cr_assert_eq(smq_client_state(c), SMQ_CLIENT_CLOSED);
	grab(c);
	cr_assert_eq(olen - opos, 0, "the client wrote %zu bytes after being refused", olen - opos);
	smq_client_free(c);
}

Test(core_client, packet_before_connack_is_a_protocol_error)
{
	struct smq_client *c = make(SMQ_V5, true, 0);
	struct smq_client_event ev;
	struct smq_packet p;

	smq_client_connect(c, t_now);
	expect_out(c, 0, SMQ_CONNECT, &p);
	cr_assert_eq(send_publish(c, SMQ_V5, "t", "x", 0, 0, false), -SMQ_RC_PROTOCOL_ERROR);
	expect_out(c, SMQ_V5, SMQ_DISCONNECT, &p);	/* 5.0 says why [MQTT-4.13.1-1] */
	cr_assert_eq(p.reason, SMQ_RC_PROTOCOL_ERROR);
	expect_event(c, SMQ_CLIENT_EV_ERROR, &ev);
	expect_no_event(c);
	smq_client_free(c);
}

Test(core_client, session_present_after_clean_connect_is_a_protocol_error)
{
	struct smq_client *c = make(SMQ_V311, true, 0);
	struct smq_packet p;

	smq_client_connect(c, t_now);
	expect_out(c, 0, SMQ_CONNECT, &p);
	send_connack(c, SMQ_V311, true, 0, NULL);
	cr_assert_eq(smq_client_error(c), -SMQ_RC_PROTOCOL_ERROR);
	expect_quiet(c);	/* 3.1.1 just closes */
	smq_client_free(c);
}

Test(core_client, v5_connack_limits_are_honoured)
{
	struct smq_client_opts o = { .version = SMQ_V5, .clean = true };
	struct smq_client *c = smq_client_new(&o);
	struct smq_props pr = { 0 };
	char big[200];

	memset(big, 'x', sizeof(big));
	SMQ_SET(&pr, SMQ_PROP_MAX_PACKET_SIZE);
	pr.max_packet_size = 100;
	SMQ_SET(&pr, SMQ_PROP_MAX_QOS);
	pr.max_qos = 1;
	SMQ_SET(&pr, SMQ_PROP_RETAIN_AVAILABLE);
	pr.retain_available = 0;
	SMQ_SET(&pr, SMQ_PROP_ASSIGNED_CLIENT_ID);
	pr.assigned_client_id = S("auto-1");
	SMQ_SET(&pr, SMQ_PROP_SERVER_KEEP_ALIVE);
	pr.server_keep_alive = 5;
	olen = opos = 0;
	handshake(c, SMQ_V5, false, &pr);
	cr_assert_str_eq(smq_client_id(c), "auto-1");
	cr_assert_eq(smq_client_publish(c, "t", (struct smq_str){ (uint8_t *)big, 200 }, 0,
					false, NULL), -EMSGSIZE);
	cr_assert_eq(smq_client_publish(c, "t", S("x"), 2, false, NULL),
		     -SMQ_RC_QOS_NOT_SUPPORTED);
	cr_assert_eq(smq_client_publish(c, "t", S("x"), 0, true, NULL),
		     -SMQ_RC_RETAIN_NOT_SUPPORTED);
	cr_assert_eq(smq_client_next_deadline(c), t_now + 5000);	/* server keep alive */
	smq_client_free(c);
}

/* ---- outgoing QoS ------------------------------------------------------ */

Test(core_client, qos0_publish_is_done_once_written)
{
	struct smq_client *c = connected(SMQ_V311);
	struct smq_client_event ev;
	struct smq_packet p;
	const uint8_t *out;
	size_t n;

	cr_assert_eq(smq_client_publish(c, "a/b", S("hi"), 0, true, NULL), 0);
	expect_no_event(c);
	smq_client_out(c, &out, &n);
	smq_client_out_consumed(c, n - 1);
	expect_no_event(c);	/* one byte still unwritten */
	smq_client_out_consumed(c, 1);
	expect_event(c, SMQ_CLIENT_EV_PUBLISH_DONE, &ev);
	cr_assert_eq(ev.packet_id, 0);
	cr_assert_eq(ev.reason, 0);
	cr_assert_eq(smq_decode(out, n, SMQ_V311, &p), 0);
	cr_assert(p.publish.retain);
	cr_assert_eq(p.publish.qos, 0);
	smq_client_free(c);
}

Test(core_client, qos1_publish_completes_on_puback)
{
	struct smq_client *c = connected(SMQ_V311);
	struct smq_client_event ev;
	struct smq_packet p;
	int id = smq_client_publish(c, "a", S("m"), 1, false, NULL);

	cr_assert_gt(id, 0);
	expect_out(c, SMQ_V311, SMQ_PUBLISH, &p);
	cr_assert_eq(p.packet_id, id);
	cr_assert_eq(p.publish.qos, 1);
	cr_assert_not(p.publish.dup);
	cr_assert_eq(smq_client_inflight(c), 1);
	expect_no_event(c);
	send_ack(c, SMQ_V311, SMQ_PUBACK, (uint16_t)id, 0);
	expect_event(c, SMQ_CLIENT_EV_PUBLISH_DONE, &ev);
	cr_assert_eq(ev.packet_id, id);
	cr_assert_eq(ev.reason, 0);
	cr_assert_eq(smq_client_inflight(c), 0);
	expect_quiet(c);
	smq_client_free(c);
}

Test(core_client, qos2_publish_sends_pubrel_on_pubrec_and_completes_on_pubcomp)
{
	struct smq_client *c = connected(SMQ_V311);
	struct smq_client_event ev;
	struct smq_packet p;
	int id = smq_client_publish(c, "a", S("m"), 2, false, NULL);

	expect_out(c, SMQ_V311, SMQ_PUBLISH, &p);
	cr_assert_eq(p.publish.qos, 2);
	send_ack(c, SMQ_V311, SMQ_PUBREC, (uint16_t)id, 0);
	expect_out(c, SMQ_V311, SMQ_PUBREL, &p);
	cr_assert_eq(p.packet_id, id);
	cr_assert_eq(p.flags, 2);	/* [MQTT-3.6.1-1] */
	expect_no_event(c);
	send_ack(c, SMQ_V311, SMQ_PUBCOMP, (uint16_t)id, 0);
	expect_event(c, SMQ_CLIENT_EV_PUBLISH_DONE, &ev);
	cr_assert_eq(ev.packet_id, id);
	cr_assert_eq(smq_client_inflight(c), 0);
	smq_client_free(c);
}

Test(core_client, v5_pubrec_with_error_ends_the_flow_without_pubrel)
{
	struct smq_client *c = connected(SMQ_V5);
	struct smq_client_event ev;
	struct smq_packet p;
	int id = smq_client_publish(c, "a", S("m"), 2, false, NULL);

	expect_out(c, SMQ_V5, SMQ_PUBLISH, &p);
	send_ack(c, SMQ_V5, SMQ_PUBREC, (uint16_t)id, SMQ_RC_QUOTA_EXCEEDED);
	expect_quiet(c);
	expect_event(c, SMQ_CLIENT_EV_PUBLISH_DONE, &ev);
	cr_assert_eq(ev.reason, SMQ_RC_QUOTA_EXCEEDED);
	cr_assert_eq(smq_client_inflight(c), 0);
	smq_client_free(c);
}

Test(core_client, v5_puback_reason_reaches_the_caller)
{
	struct smq_client *c = connected(SMQ_V5);
	struct smq_client_event ev;
	int id = smq_client_publish(c, "a", S("m"), 1, false, NULL);

	send_ack(c, SMQ_V5, SMQ_PUBACK, (uint16_t)id, SMQ_RC_NO_MATCHING_SUBSCRIBERS);
	expect_event(c, SMQ_CLIENT_EV_PUBLISH_DONE, &ev);
	cr_assert_eq(ev.reason, SMQ_RC_NO_MATCHING_SUBSCRIBERS);
	smq_client_free(c);
}

Test(core_client, v5_pubcomp_0x92_after_pubrec_still_counts_as_delivered)
{
	struct smq_client *c = connected(SMQ_V5);
	struct smq_client_event ev;
	int id = smq_client_publish(c, "a", S("m"), 2, false, NULL);

	send_ack(c, SMQ_V5, SMQ_PUBREC, (uint16_t)id, 0);
	send_ack(c, SMQ_V5, SMQ_PUBCOMP, (uint16_t)id, SMQ_RC_PACKET_ID_NOT_FOUND);
	expect_event(c, SMQ_CLIENT_EV_PUBLISH_DONE, &ev);
	cr_assert_eq(ev.reason, 0);
	smq_client_free(c);
}

Test(core_client, full_inflight_window_gives_eagain_until_an_ack)
{
	struct smq_client_opts o = { .version = SMQ_V311, .client_id = "c", .clean = true,
				     .max_inflight = 2 };
	struct smq_client *c = smq_client_new(&o);
	int a, b;

	olen = opos = 0;
	handshake(c, SMQ_V311, false, NULL);
	a = smq_client_publish(c, "t", S("1"), 1, false, NULL);
	b = smq_client_publish(c, "t", S("2"), 2, false, NULL);
	cr_assert_gt(a, 0);
	cr_assert_gt(b, 0);
	cr_assert_neq(a, b);
	cr_assert_eq(smq_client_publish(c, "t", S("3"), 1, false, NULL), -EAGAIN);
	cr_assert_eq(smq_client_publish(c, "t", S("q0"), 0, false, NULL), 0);	/* not counted */
	send_ack(c, SMQ_V311, SMQ_PUBACK, (uint16_t)a, 0);
	cr_assert_gt(smq_client_publish(c, "t", S("3"), 1, false, NULL), 0);
	smq_client_free(c);
}

Test(core_client, v5_server_receive_maximum_narrows_the_window)
{
	struct smq_client *c = make(SMQ_V5, true, 0);
	struct smq_props pr = { 0 };

	SMQ_SET(&pr, SMQ_PROP_RECEIVE_MAX);
	pr.receive_max = 1;
	handshake(c, SMQ_V5, false, &pr);
	cr_assert_gt(smq_client_publish(c, "t", S("1"), 1, false, NULL), 0);
	cr_assert_eq(smq_client_publish(c, "t", S("2"), 1, false, NULL), -EAGAIN);
	smq_client_free(c);
}

Test(core_client, output_over_its_bound_gives_eagain)
{
	struct smq_client_opts o = { .version = SMQ_V311, .client_id = "c", .clean = true,
				     .max_out_bytes = 64 };
	struct smq_client *c = smq_client_new(&o);
	char pay[100];
	const uint8_t *p;
	size_t n;

	memset(pay, 'z', sizeof(pay));
	olen = opos = 0;
	handshake(c, SMQ_V311, false, NULL);
	cr_assert_eq(smq_client_publish(c, "t", (struct smq_str){ (uint8_t *)pay, 100 }, 0,
					false, NULL), 0);
	cr_assert_eq(smq_client_publish(c, "t", S("x"), 0, false, NULL), -EAGAIN);
	smq_client_out(c, &p, &n);
	smq_client_out_consumed(c, n);
	cr_assert_eq(smq_client_publish(c, "t", S("x"), 0, false, NULL), 0);
	smq_client_free(c);
}

/* Many messages through a small window, acked out of order: packet ids
 * wrap around 65535 and are never handed out twice while in use. */
Test(core_client, packet_ids_are_unique_while_in_flight_across_wraparound)
{
	struct smq_client_opts o = { .version = SMQ_V311, .client_id = "c", .clean = true,
				     .max_inflight = 50 };
	struct smq_client *c = smq_client_new(&o);
	static bool used[65536];
	int live[50], nlive = 0, i, id, k, done = 0;
	struct smq_client_event ev;
	const uint8_t *p;
	size_t n;

	olen = opos = 0;
	handshake(c, SMQ_V311, false, NULL);
	srand(7);
	for (i = 0; i < 200000; i++) {
		while ((id = smq_client_publish(c, "t", S("x"), 1, false, NULL)) > 0) {
			cr_assert_not(used[id], "id %d handed out twice", id);
			used[id] = true;
			live[nlive++] = id;
		}
		cr_assert_eq(id, -EAGAIN);
		cr_assert_eq(nlive, 50);
		k = rand() % nlive;
		send_ack(c, SMQ_V311, SMQ_PUBACK, (uint16_t)live[k], 0);
		used[live[k]] = false;
		live[k] = live[--nlive];
		smq_client_out(c, &p, &n);
		smq_client_out_consumed(c, n);
		while (smq_client_next_event(c, &ev))
			done += ev.type == SMQ_CLIENT_EV_PUBLISH_DONE;
	}
	cr_assert_eq(done, 200000);
	smq_client_free(c);
}

/* ---- incoming QoS ------------------------------------------------------ */

Test(core_client, incoming_qos1_is_delivered_and_acked)
{
	struct smq_client *c = connected(SMQ_V311);
	struct smq_client_event ev;
	struct smq_packet p;

	cr_assert_eq(send_publish(c, SMQ_V311, "s/1", "payload", 1, 42, false), 0);
	expect_event(c, SMQ_CLIENT_EV_MESSAGE, &ev);
	cr_assert_eq(ev.msg.topic.len, 3);
	cr_assert_arr_eq(ev.msg.topic.p, "s/1", 3);
	cr_assert_eq(ev.msg.payload.len, 7);
	cr_assert_arr_eq(ev.msg.payload.p, "payload", 7);
	cr_assert_eq(ev.msg.qos, 1);
	cr_assert_eq(ev.packet_id, 42);
	expect_out(c, SMQ_V311, SMQ_PUBACK, &p);
	cr_assert_eq(p.packet_id, 42);
	smq_client_free(c);
}

Test(core_client, duplicate_incoming_qos2_is_delivered_once)
{
	struct smq_client *c = connected(SMQ_V311);
	struct smq_client_event ev;
	struct smq_packet p;

	cr_assert_eq(send_publish(c, SMQ_V311, "t", "once", 2, 9, false), 0);
	expect_event(c, SMQ_CLIENT_EV_MESSAGE, &ev);
	expect_out(c, SMQ_V311, SMQ_PUBREC, &p);
	cr_assert_eq(p.packet_id, 9);
	/* the server did not see our PUBREC and sends again */
	cr_assert_eq(send_publish(c, SMQ_V311, "t", "once", 2, 9, true), 0);
	expect_no_event(c);
	expect_out(c, SMQ_V311, SMQ_PUBREC, &p);
	send_ack(c, SMQ_V311, SMQ_PUBREL, 9, 0);
	expect_out(c, SMQ_V311, SMQ_PUBCOMP, &p);
	cr_assert_eq(p.packet_id, 9);
	/* released: the id may carry a new message now */
	cr_assert_eq(send_publish(c, SMQ_V311, "t", "again", 2, 9, false), 0);
	expect_event(c, SMQ_CLIENT_EV_MESSAGE, &ev);
	cr_assert_arr_eq(ev.msg.payload.p, "again", 5);
	smq_client_free(c);
}

Test(core_client, v5_pubrel_for_unknown_id_gets_pubcomp_0x92)
{
	struct smq_client *c = connected(SMQ_V5);
	struct smq_packet p;

	send_ack(c, SMQ_V5, SMQ_PUBREL, 77, 0);
	expect_out(c, SMQ_V5, SMQ_PUBCOMP, &p);
	cr_assert_eq(p.packet_id, 77);
	cr_assert_eq(p.reason, SMQ_RC_PACKET_ID_NOT_FOUND);
	smq_client_free(c);
}

Test(core_client, v5_server_exceeding_our_receive_maximum_is_disconnected)
{
	struct smq_client_opts o = { .version = SMQ_V5, .clean = true, .receive_max = 1 };
	struct smq_client *c = smq_client_new(&o);
	struct smq_client_event ev;
	struct smq_packet p;

	olen = opos = 0;
	handshake(c, SMQ_V5, false, NULL);
	cr_assert_eq(send_publish(c, SMQ_V5, "t", "1", 2, 1, false), 0);
	expect_out(c, SMQ_V5, SMQ_PUBREC, &p);
	cr_assert_eq(send_publish(c, SMQ_V5, "t", "2", 2, 2, false), -SMQ_RC_RECEIVE_MAX_EXCEEDED);
	expect_out(c, SMQ_V5, SMQ_DISCONNECT, &p);
	cr_assert_eq(p.reason, SMQ_RC_RECEIVE_MAX_EXCEEDED);
	expect_event(c, SMQ_CLIENT_EV_MESSAGE, &ev);
	expect_event(c, SMQ_CLIENT_EV_ERROR, &ev);
	smq_client_free(c);
}

Test(core_client, packet_split_into_single_bytes_is_reassembled)
{
	struct smq_client *c = connected(SMQ_V5);
	struct smq_packet p = { .type = SMQ_PUBLISH, .version = SMQ_V5 };
	struct smq_client_event ev;
	uint8_t buf[256], copy;
	long n, i;

	p.publish.topic = S("split/topic");
	p.publish.payload = S("0123456789");
	SMQ_SET(&p.props, SMQ_PROP_CONTENT_TYPE);
	p.props.content_type = S("text/plain");
	n = smq_encode(&p, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	for (i = 0; i < n; i++) {
		copy = buf[i];	/* a one-byte buffer the caller reuses at once */
		cr_assert_eq(smq_client_feed(c, &copy, 1, t_now), 0);
		copy = 0xFF;
		if (i < n - 1)
			expect_no_event(c);
	}
	expect_event(c, SMQ_CLIENT_EV_MESSAGE, &ev);
	cr_assert_arr_eq(ev.msg.topic.p, "split/topic", 11);
	cr_assert_arr_eq(ev.msg.payload.p, "0123456789", 10);
	cr_assert_eq(ev.props.content_type.len, 10);
	cr_assert_arr_eq(ev.props.content_type.p, "text/plain", 10);
	smq_client_free(c);
}

Test(core_client, queued_events_survive_later_feeds)
{
	struct smq_client *c = connected(SMQ_V311);
	struct smq_client_event ev;
	char topic[16];
	int i;

	/* ten messages fed one call each, read only afterwards: compaction of
	 * the input must keep every queued message intact */
	for (i = 0; i < 10; i++) {
		snprintf(topic, sizeof(topic), "t/%d", i);
		cr_assert_eq(send_publish(c, SMQ_V311, topic, topic, 0, 0, false), 0);
	}
	for (i = 0; i < 10; i++) {
		snprintf(topic, sizeof(topic), "t/%d", i);
		expect_event(c, SMQ_CLIENT_EV_MESSAGE, &ev);
		cr_assert_eq(ev.msg.topic.len, strlen(topic));
		cr_assert_arr_eq(ev.msg.payload.p, topic, strlen(topic));
		cr_assert_eq(send_publish(c, SMQ_V311, "late", "x", 0, 0, false), 0);
	}
	smq_client_free(c);
}

Test(core_client, take_event_leaves_the_others_in_order)
{
	struct smq_client *c = connected(SMQ_V311);
	struct smq_client_event ev;
	int id;

	send_publish(c, SMQ_V311, "m1", "1", 0, 0, false);
	id = smq_client_publish(c, "t", S("x"), 1, false, NULL);
	send_ack(c, SMQ_V311, SMQ_PUBACK, (uint16_t)id, 0);
	send_publish(c, SMQ_V311, "m2", "2", 0, 0, false);
	cr_assert(smq_client_take_event(c, SMQ_CLIENT_EVMASK(SMQ_CLIENT_EV_PUBLISH_DONE), id,
					&ev));
	cr_assert_eq(ev.packet_id, id);
	expect_event(c, SMQ_CLIENT_EV_MESSAGE, &ev);
	cr_assert_arr_eq(ev.msg.topic.p, "m1", 2);
	expect_event(c, SMQ_CLIENT_EV_MESSAGE, &ev);
	cr_assert_arr_eq(ev.msg.topic.p, "m2", 2);
	expect_no_event(c);
	smq_client_free(c);
}

/* ---- reconnect --------------------------------------------------------- */

Test(core_client, persistent_reconnect_resends_publish_with_dup_and_pubrel)
{
	struct smq_client *c = make(SMQ_V311, false, 0);
	struct smq_client_event ev;
	struct smq_packet p;
	int q2, q1;

	handshake(c, SMQ_V311, false, NULL);
	q2 = smq_client_publish(c, "t", S("two"), 2, false, NULL);
	q1 = smq_client_publish(c, "t", S("one"), 1, false, NULL);
	expect_out(c, SMQ_V311, SMQ_PUBLISH, &p);
	expect_out(c, SMQ_V311, SMQ_PUBLISH, &p);
	send_ack(c, SMQ_V311, SMQ_PUBREC, (uint16_t)q2, 0);
	expect_out(c, SMQ_V311, SMQ_PUBREL, &p);
	/* the connection drops before PUBACK and PUBCOMP */
	smq_client_reset_connection(c);
	cr_assert_eq(smq_client_state(c), SMQ_CLIENT_IDLE);
	handshake(c, SMQ_V311, true, NULL);
	/* in order: the PUBLISH never acked, then the PUBREL [MQTT-4.4.0-1] */
	expect_out(c, SMQ_V311, SMQ_PUBLISH, &p);
	cr_assert_eq(p.packet_id, q1);
	cr_assert(p.publish.dup);	/* [MQTT-3.3.1-1] */
	cr_assert_arr_eq(p.publish.payload.p, "one", 3);
	expect_out(c, SMQ_V311, SMQ_PUBREL, &p);
	cr_assert_eq(p.packet_id, q2);
	expect_quiet(c);
	send_ack(c, SMQ_V311, SMQ_PUBACK, (uint16_t)q1, 0);
	send_ack(c, SMQ_V311, SMQ_PUBCOMP, (uint16_t)q2, 0);
	expect_event(c, SMQ_CLIENT_EV_PUBLISH_DONE, &ev);
	cr_assert_eq(ev.packet_id, q1);
	expect_event(c, SMQ_CLIENT_EV_PUBLISH_DONE, &ev);
	cr_assert_eq(ev.packet_id, q2);
	smq_client_free(c);
}

Test(core_client, unacked_qos2_publish_is_resent_as_publish_not_pubrel)
{
	struct smq_client *c = make(SMQ_V5, false, 0);
	struct smq_packet p;
	int id;

	handshake(c, SMQ_V5, false, NULL);
	id = smq_client_publish(c, "t", S("x"), 2, false, NULL);
	expect_out(c, SMQ_V5, SMQ_PUBLISH, &p);
	smq_client_reset_connection(c);
	handshake(c, SMQ_V5, true, NULL);
	expect_out(c, SMQ_V5, SMQ_PUBLISH, &p);
	cr_assert_eq(p.packet_id, id);
	cr_assert(p.publish.dup);
	cr_assert_eq(p.publish.qos, 2);
	smq_client_free(c);
}

/* 3.1 CONNACK has no session present flag: a client that asked to keep
 * its session re-sends as if it was kept. */
Test(core_client, v31_persistent_reconnect_resends_without_the_flag)
{
	struct smq_client *c = make(SMQ_V31, false, 0);
	struct smq_packet p;
	int id;

	handshake(c, SMQ_V31, false, NULL);
	id = smq_client_publish(c, "t", S("x"), 1, false, NULL);
	expect_out(c, SMQ_V31, SMQ_PUBLISH, &p);
	smq_client_reset_connection(c);
	handshake(c, SMQ_V31, false, NULL);
	expect_out(c, SMQ_V31, SMQ_PUBLISH, &p);
	cr_assert_eq(p.packet_id, id);
	cr_assert(p.publish.dup);
	smq_client_free(c);
}

Test(core_client, session_not_present_discards_state_and_reports_loss)
{
	struct smq_client *c = make(SMQ_V311, false, 0);
	struct smq_client_event ev;
	struct smq_packet p;
	int id;

	handshake(c, SMQ_V311, false, NULL);
	id = smq_client_publish(c, "t", S("x"), 1, false, NULL);
	send_publish(c, SMQ_V311, "in", "q2", 2, 5, false);
	expect_event(c, SMQ_CLIENT_EV_MESSAGE, &ev);
	smq_client_reset_connection(c);
	olen = opos = 0;
	handshake(c, SMQ_V311, false, NULL);	/* the server lost our session */
	expect_quiet(c);			/* nothing re-sent */
	expect_event(c, SMQ_CLIENT_EV_PUBLISH_DONE, &ev);
	cr_assert_eq(ev.packet_id, id);
	cr_assert_eq(ev.reason, SMQ_RC_UNSPECIFIED);
	cr_assert_eq(smq_client_inflight(c), 0);
	/* incoming QoS 2 state is gone too: id 5 is a new message */
	send_publish(c, SMQ_V311, "in", "q2", 2, 5, true);
	expect_event(c, SMQ_CLIENT_EV_MESSAGE, &ev);
	expect_out(c, SMQ_V311, SMQ_PUBREC, &p);
	smq_client_free(c);
}

Test(core_client, clean_connect_discards_session_before_sending)
{
	struct smq_client *c = make(SMQ_V311, true, 0);
	struct smq_client_event ev;
	int id;

	handshake(c, SMQ_V311, false, NULL);
	id = smq_client_publish(c, "t", S("x"), 1, false, NULL);
	smq_client_reset_connection(c);
	cr_assert_eq(smq_client_inflight(c), 1);
	cr_assert_eq(smq_client_connect(c, t_now), 0);
	cr_assert_eq(smq_client_inflight(c), 0);	/* [MQTT-3.1.2-6] */
	expect_event(c, SMQ_CLIENT_EV_PUBLISH_DONE, &ev);
	cr_assert_eq(ev.packet_id, id);
	cr_assert_eq(ev.reason, SMQ_RC_UNSPECIFIED);
	smq_client_free(c);
}

Test(core_client, unwritten_qos0_is_reported_lost_on_reset)
{
	struct smq_client *c = connected(SMQ_V311);
	struct smq_client_event ev;

	cr_assert_eq(smq_client_publish(c, "t", S("x"), 0, false, NULL), 0);
	smq_client_reset_connection(c);
	expect_event(c, SMQ_CLIENT_EV_PUBLISH_DONE, &ev);
	cr_assert_eq(ev.reason, SMQ_RC_UNSPECIFIED);
	expect_no_event(c);
	smq_client_free(c);
}

/* ---- keepalive --------------------------------------------------------- */

Test(core_client, pingreq_when_keepalive_elapses_and_timeout_without_pingresp)
{
	struct smq_client *c = make(SMQ_V311, true, 10);
	struct smq_client_event ev;
	uint64_t t0 = t_now;
	static const uint8_t pingreq[] = { 0xC0, 0x00 };

	handshake(c, SMQ_V311, false, NULL);
	cr_assert_eq(smq_client_next_deadline(c), t0 + 10000);
	cr_assert_eq(smq_client_tick(c, t0 + 9999), 0);
	expect_quiet(c);
	cr_assert_eq(smq_client_tick(c, t0 + 10000), 0);
	grab(c);
	cr_assert_eq(olen - opos, 2);
	cr_assert_arr_eq(obuf + opos, pingreq, 2);
	opos = olen;
	cr_assert_eq(smq_client_next_deadline(c), t0 + 20000);
	cr_assert_eq(smq_client_tick(c, t0 + 15000), 0);
	expect_quiet(c);	/* one PINGREQ at a time */
	cr_assert_eq(smq_client_tick(c, t0 + 20000), -ETIMEDOUT);
	cr_assert_eq(smq_client_state(c), SMQ_CLIENT_CLOSED);
	expect_event(c, SMQ_CLIENT_EV_ERROR, &ev);
	cr_assert_eq(ev.error, -ETIMEDOUT);
	smq_client_free(c);
}

Test(core_client, pingresp_rearms_keepalive_and_traffic_defers_it)
{
	struct smq_client *c = make(SMQ_V311, true, 10);
	struct smq_client_event ev;
	struct smq_packet p;
	uint64_t t0 = t_now;

	handshake(c, SMQ_V311, false, NULL);
	cr_assert_eq(smq_client_tick(c, t0 + 10000), 0);
	expect_out(c, SMQ_V311, SMQ_PINGREQ, &p);
	t_now = t0 + 10500;
	feed_pkt(c, &(struct smq_packet){ .type = SMQ_PINGRESP, .version = SMQ_V311 });
	expect_event(c, SMQ_CLIENT_EV_PINGRESP, &ev);
	cr_assert_eq(smq_client_next_deadline(c), t0 + 20000);	/* from our PINGREQ */
	/* a publish and an incoming message at 15 s push the next ping to 25 s */
	smq_client_tick(c, t0 + 15000);
	smq_client_publish(c, "t", S("x"), 0, false, NULL);
	t_now = t0 + 15000;
	send_publish(c, SMQ_V311, "t", "y", 0, 0, false);
	cr_assert_eq(smq_client_next_deadline(c), t0 + 25000);
	cr_assert_eq(smq_client_tick(c, t0 + 24999), 0);
	grab(c);
	opos = olen;
	cr_assert_eq(smq_client_tick(c, t0 + 25000), 0);
	expect_out(c, SMQ_V311, SMQ_PINGREQ, &p);
	smq_client_free(c);
}

Test(core_client, no_keepalive_means_no_deadline)
{
	struct smq_client *c = connected(SMQ_V311);

	cr_assert_eq(smq_client_next_deadline(c), UINT64_MAX);
	cr_assert_eq(smq_client_tick(c, t_now + 100000000), 0);
	expect_quiet(c);
	smq_client_free(c);
}

/* ---- subscribe --------------------------------------------------------- */

Test(core_client, subscribe_and_suback_codes)
{
	struct smq_client *c = connected(SMQ_V311);
	struct smq_sub_entry e[2] = { { S("a/+"), 1 }, { S("b/#"), 2 } };
	struct smq_client_event ev;
	struct smq_packet p = { .type = SMQ_SUBACK, .version = SMQ_V311 };
	uint8_t codes[2] = { 1, 0x80 };
	struct smq_sub_entry got;
	uint32_t pos = 0;
	int id = smq_client_subscribe(c, e, 2, NULL);

	cr_assert_gt(id, 0);
	expect_out(c, SMQ_V311, SMQ_SUBSCRIBE, &p);
	cr_assert_eq(p.flags, 2);	/* [MQTT-3.8.1-1] */
	cr_assert_eq(p.list.count, 2);
	cr_assert(smq_list_next_sub(&p, &pos, &got));
	cr_assert_eq(got.filter.len, 3);
	cr_assert_arr_eq(got.filter.p, "a/+", 3);
	cr_assert_eq(SMQ_SUBOPT_QOS(got.opts), 1);
	p = (struct smq_packet){ .type = SMQ_SUBACK, .version = SMQ_V311, .packet_id = (uint16_t)id };
	p.list.raw = (struct smq_str){ codes, 2 };
	p.list.count = 2;
	cr_assert_eq(feed_pkt(c, &p), 0);
	expect_event(c, SMQ_CLIENT_EV_SUBACK, &ev);
	cr_assert_eq(ev.packet_id, id);
	cr_assert_eq(ev.codes.len, 2);
	cr_assert_arr_eq(ev.codes.p, codes, 2);
	smq_client_free(c);
}

Test(core_client, suback_with_wrong_code_count_is_a_protocol_error)
{
	struct smq_client *c = connected(SMQ_V311);
	struct smq_sub_entry e[2] = { { S("a"), 0 }, { S("b"), 0 } };
	struct smq_packet p = { .type = SMQ_SUBACK, .version = SMQ_V311 };
	uint8_t code = 0;
	int id = smq_client_subscribe(c, e, 2, NULL);

	p.packet_id = (uint16_t)id;
	p.list.raw = (struct smq_str){ &code, 1 };
	p.list.count = 1;
	cr_assert_eq(feed_pkt(c, &p), -SMQ_RC_PROTOCOL_ERROR);
	smq_client_free(c);
}

Test(core_client, unsubscribe_and_unsuback)
{
	struct smq_client *c = connected(SMQ_V5);
	struct smq_str f[1] = { S("a/b") };
	struct smq_client_event ev;
	struct smq_packet p;
	uint8_t code = SMQ_RC_NO_SUBSCRIPTION_EXISTED;
	int id = smq_client_unsubscribe(c, f, 1, NULL);

	cr_assert_gt(id, 0);
	expect_out(c, SMQ_V5, SMQ_UNSUBSCRIBE, &p);
	cr_assert_eq(p.packet_id, id);
	p = (struct smq_packet){ .type = SMQ_UNSUBACK, .version = SMQ_V5, .packet_id = (uint16_t)id };
	p.list.raw = (struct smq_str){ &code, 1 };
	p.list.count = 1;
	cr_assert_eq(feed_pkt(c, &p), 0);
	expect_event(c, SMQ_CLIENT_EV_UNSUBACK, &ev);
	cr_assert_eq(ev.codes.len, 1);
	cr_assert_eq(ev.codes.p[0], SMQ_RC_NO_SUBSCRIPTION_EXISTED);
	smq_client_free(c);
}

Test(core_client, invalid_arguments_are_refused_locally)
{
	struct smq_client *c = connected(SMQ_V5);
	struct smq_sub_entry bad_filter = { S("a/#/b"), 0 };
	struct smq_sub_entry shared_nolocal = { S("$share/g/a"), SMQ_SUBOPT_NO_LOCAL };
	struct smq_sub_entry rh3 = { S("a"), 0x30 };
	struct smq_props alias = { 0 };

	SMQ_SET(&alias, SMQ_PROP_TOPIC_ALIAS);
	alias.topic_alias = 1;
	cr_assert_eq(smq_client_publish(c, "a/+", S("x"), 0, false, NULL), -EINVAL);
	cr_assert_eq(smq_client_publish(c, "", S("x"), 0, false, NULL), -EINVAL);
	cr_assert_eq(smq_client_publish(c, "a", S("x"), 3, false, NULL), -EINVAL);
	cr_assert_eq(smq_client_publish(c, "a", S("x"), 0, false, &alias), -EINVAL);
	cr_assert_eq(smq_client_subscribe(c, &bad_filter, 1, NULL), -EINVAL);
	cr_assert_eq(smq_client_subscribe(c, &shared_nolocal, 1, NULL), -EINVAL);
	cr_assert_eq(smq_client_subscribe(c, &rh3, 1, NULL), -EINVAL);
	cr_assert_eq(smq_client_subscribe(c, &rh3, 0, NULL), -EINVAL);
	expect_quiet(c);
	smq_client_free(c);
}

/* ---- errors and endings ------------------------------------------------ */

Test(core_client, malformed_input_ends_the_connection_with_0x81)
{
	struct smq_client *c = connected(SMQ_V5);
	static const uint8_t bad[] = { 0x40, 0x01, 0x00 };	/* PUBACK too short */
	struct smq_client_event ev;
	struct smq_packet p;

	cr_assert_eq(smq_client_feed(c, bad, sizeof(bad), t_now), -SMQ_RC_MALFORMED);
	expect_out(c, SMQ_V5, SMQ_DISCONNECT, &p);
	cr_assert_eq(p.reason, SMQ_RC_MALFORMED);
	expect_event(c, SMQ_CLIENT_EV_ERROR, &ev);
	cr_assert_eq(ev.error, -SMQ_RC_MALFORMED);
	cr_assert_eq(smq_client_feed(c, bad, sizeof(bad), t_now), -ENOTCONN);
	smq_client_free(c);
}

Test(core_client, packet_over_our_maximum_is_refused_before_it_arrives)
{
	struct smq_client_opts o = { .version = SMQ_V311, .client_id = "c", .clean = true,
				     .max_packet_size = 64 };
	struct smq_client *c = smq_client_new(&o);
	static const uint8_t head[] = { 0x30, 0xC8, 0x01 };	/* PUBLISH, 200 bytes */

	olen = opos = 0;
	handshake(c, SMQ_V311, false, NULL);
	cr_assert_eq(smq_client_feed(c, head, sizeof(head), t_now), -SMQ_RC_PACKET_TOO_LARGE);
	cr_assert_eq(smq_client_state(c), SMQ_CLIENT_CLOSED);
	smq_client_free(c);
}

Test(core_client, packets_a_server_never_sends_are_protocol_errors)
{
	struct smq_client *c = connected(SMQ_V311);

	cr_assert_eq(feed_pkt(c, &(struct smq_packet){ .type = SMQ_PINGREQ, .version = SMQ_V311 }),
		     -SMQ_RC_PROTOCOL_ERROR);
	smq_client_free(c);
}

Test(core_client, v5_server_disconnect_is_an_event_with_its_reason)
{
	struct smq_client *c = connected(SMQ_V5);
	struct smq_client_event ev;

	cr_assert_eq(feed_pkt(c, &(struct smq_packet){ .type = SMQ_DISCONNECT, .version = SMQ_V5,
						       .reason = SMQ_RC_SESSION_TAKEN_OVER }),
		     -SMQ_RC_SESSION_TAKEN_OVER);
	expect_event(c, SMQ_CLIENT_EV_DISCONNECT, &ev);
	cr_assert_eq(ev.reason, SMQ_RC_SESSION_TAKEN_OVER);
	expect_no_event(c);
	expect_quiet(c);
	smq_client_free(c);
}

Test(core_client, disconnect_writes_disconnect_and_closes)
{
	struct smq_client *c = connected(SMQ_V5);
	struct smq_packet p;

	cr_assert_eq(smq_client_disconnect(c, SMQ_RC_DISCONNECT_WITH_WILL, NULL), 0);
	expect_out(c, SMQ_V5, SMQ_DISCONNECT, &p);
	cr_assert_eq(p.reason, SMQ_RC_DISCONNECT_WITH_WILL);
	cr_assert_eq(smq_client_state(c), SMQ_CLIENT_CLOSED);
	cr_assert_eq(smq_client_error(c), 0);
	cr_assert_eq(smq_client_publish(c, "t", S("x"), 0, false, NULL), -ENOTCONN);
	cr_assert_eq(smq_client_disconnect(c, 0, NULL), -ENOTCONN);
	smq_client_free(c);
}

Test(core_client, v31_disconnect_is_two_bytes)
{
	struct smq_client *c = connected(SMQ_V31);
	static const uint8_t want[] = { 0xE0, 0x00 };

	cr_assert_eq(smq_client_disconnect(c, SMQ_RC_UNSPECIFIED, NULL), 0);
	grab(c);
	cr_assert_eq(olen, 2);
	cr_assert_arr_eq(obuf, want, 2);
	smq_client_free(c);
}

Test(core_client, errors_have_names)
{
	cr_assert_str_neq(smq_client_strerror(-ECONNREFUSED), "");
	cr_assert_str_neq(smq_client_strerror(-SMQ_RC_NOT_AUTHORIZED), "");
	cr_assert_eq(smq_client_connack_error(SMQ_V311, 4), -SMQ_RC_BAD_USER_OR_PASSWORD);
	cr_assert_eq(smq_client_connack_error(SMQ_V5, 0x87), -0x87);
	cr_assert_eq(smq_client_connack_error(SMQ_V31, 0), 0);
}

/* ---- CONNECT properties and the trace hook ------------------------------ */

Test(core_client, v5_connect_props_are_sent_copied_and_options_win)
{
	uint8_t user[64];
	char ctype[] = "auth-x";	/* overwritten after smq_client_new(): copied? */
	long n = smq_props_put_user(user, sizeof(user), S("k"), S("v"));
	struct smq_props cp = { .auth_method = S(ctype), .user = { user, (uint32_t)n },
				.session_expiry = 5, .request_problem_info = 0 };
	struct smq_client_opts o = { .version = SMQ_V5, .client_id = "c1", .clean = true,
				     .session_expiry = 300, .connect_props = &cp };
	struct smq_client *c;
	struct smq_packet p;
	struct smq_str k, v;
	uint32_t pos = 0;

	SMQ_SET(&cp, SMQ_PROP_AUTH_METHOD);
	SMQ_SET(&cp, SMQ_PROP_USER);
	SMQ_SET(&cp, SMQ_PROP_SESSION_EXPIRY);
	SMQ_SET(&cp, SMQ_PROP_REQUEST_PROBLEM_INFO);
	c = smq_client_new(&o);
	cr_assert_not_null(c);
	memset(ctype, 'Z', sizeof(ctype) - 1);
	memset(user, 0, sizeof(user));
	olen = opos = 0;
	cr_assert_eq(smq_client_connect(c, t_now), 0);
	expect_out(c, 0, SMQ_CONNECT, &p);
	cr_assert(SMQ_HAS(&p.props, SMQ_PROP_AUTH_METHOD));
	cr_assert_eq(p.props.auth_method.len, 6);
	cr_assert_arr_eq(p.props.auth_method.p, "auth-x", 6);
	cr_assert(smq_props_next_user(&p.props, &pos, &k, &v));
	cr_assert(k.len == 1 && k.p[0] == 'k' && v.len == 1 && v.p[0] == 'v');
	cr_assert(SMQ_HAS(&p.props, SMQ_PROP_REQUEST_PROBLEM_INFO));
	cr_assert_eq(p.props.request_problem_info, 0);
	cr_assert_eq(p.props.session_expiry, 300, "the option wins over the same property");
	smq_client_free(c);
}

Test(core_client, connect_props_are_ignored_before_v5)
{
	struct smq_props cp = { .content_type = S("x") };
	struct smq_client_opts o = { .version = SMQ_V311, .client_id = "c1", .clean = true,
				     .connect_props = &cp };
	struct smq_client *c;
	struct smq_packet p;

	SMQ_SET(&cp, SMQ_PROP_CONTENT_TYPE);	/* not even valid in CONNECT: never looked at */
	c = smq_client_new(&o);
	cr_assert_not_null(c);
	olen = opos = 0;
	cr_assert_eq(smq_client_connect(c, t_now), 0);
	expect_out(c, 0, SMQ_CONNECT, &p);
	cr_assert_eq(p.version, SMQ_V311);
	smq_client_free(c);
}

/* What the trace hook saw: "+TYPE" sent, "-TYPE" received, with packet ids. */
static char trace_log[1024];

static void trace_fn(void *arg, bool sent, const struct smq_packet *pkt)
{
	size_t len = strlen(trace_log);

	cr_assert_eq(arg, (void *)trace_log);
	snprintf(trace_log + len, sizeof(trace_log) - len, "%s%c%s/%u", len ? " " : "",
		 sent ? '+' : '-', smq_ptype_name(pkt->type), pkt->packet_id);
	if (pkt->type == SMQ_PUBLISH && sent && pkt->publish.dup)
		strncat(trace_log, "dup", sizeof(trace_log) - strlen(trace_log) - 1);
}

Test(core_client, trace_sees_every_packet_sent_and_received_in_order)
{
	struct smq_client *c = make(SMQ_V311, false, 0);
	struct smq_sub_entry e = { S("a/#"), 1 };
	struct smq_client_event ev;
	struct smq_packet p;
	int id, sid;

	trace_log[0] = '\0';
	smq_client_set_trace(c, trace_fn, trace_log);
	handshake(c, SMQ_V311, false, NULL);
	id = smq_client_publish(c, "t", S("x"), 2, false, NULL);
	sid = smq_client_subscribe(c, &e, 1, NULL);
	expect_out(c, SMQ_V311, SMQ_PUBLISH, &p);
	expect_out(c, SMQ_V311, SMQ_SUBSCRIBE, &p);
	send_ack(c, SMQ_V311, SMQ_PUBREC, (uint16_t)id, 0);	/* queues PUBREL */
	send_publish(c, SMQ_V311, "a/b", "in", 1, 9, false);	/* queues PUBACK */
	/* the connection drops: the PUBLISH is acknowledged, so PUBREL is re-sent */
	smq_client_reset_connection(c);
	while (smq_client_next_event(c, &ev))
		;	/* the MESSAGE; handshake() wants CONNACK next */
	handshake(c, SMQ_V311, true, NULL);
	smq_client_set_trace(c, NULL, NULL);
	cr_assert_eq(smq_client_disconnect(c, 0, NULL), 0);
	cr_assert_str_eq(trace_log, "+CONNECT/0 -CONNACK/0 +PUBLISH/1 +SUBSCRIBE/2 "
			 "-PUBREC/1 +PUBREL/1 -PUBLISH/9 +PUBACK/9 +CONNECT/0 -CONNACK/0 "
			 "+PUBREL/1");
	(void)sid;
	smq_client_free(c);
}

Test(core_client, trace_shows_a_resent_publish_with_dup)
{
	struct smq_client *c = make(SMQ_V311, false, 0);
	struct smq_packet p;

	handshake(c, SMQ_V311, false, NULL);
	smq_client_publish(c, "t", S("x"), 1, false, NULL);
	expect_out(c, SMQ_V311, SMQ_PUBLISH, &p);
	smq_client_reset_connection(c);
	trace_log[0] = '\0';
	smq_client_set_trace(c, trace_fn, trace_log);
	handshake(c, SMQ_V311, true, NULL);
	cr_assert_str_eq(trace_log, "+CONNECT/0 -CONNACK/0 +PUBLISH/1dup");
	smq_client_free(c);
}
