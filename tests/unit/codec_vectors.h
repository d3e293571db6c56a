/* codec_vectors.h - known-good MQTT control packets, assembled by hand from
 * the packet layouts of the MQTT 3.1, 3.1.1 and 5.0 specifications.
 *
 * Shared by tests/unit/test_codec.c (decode, split, re-encode checks),
 * perf/bench_codec.c, and the seed dump for tests/fuzz/corpus/fuzz_codec.
 * Each entry decodes cleanly with smq_decode(bytes, len, version).
 */
#ifndef SMQ_CODEC_VECTORS_H
#define SMQ_CODEC_VECTORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"

struct codec_vec {
	const char *name;
	uint8_t version;	/* the connection's version to decode with; 0 = before CONNECT */
	uint8_t type;
	const uint8_t *bytes;
	uint32_t len;
};

#define CV_BYTES(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })
#define CV(name, ver, type, ...) { name, ver, type, CV_BYTES(__VA_ARGS__) }
#define CV_MQTT 0, 4, 'M', 'Q', 'T', 'T'
#define CV_X10 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'

static const struct codec_vec codec_vecs[] = {
	/* ---- 3.1.1 ---- */
	CV("v311_connect_min", 0, SMQ_CONNECT,
	   0x10, 12, CV_MQTT, 4, 0x02, 0, 60, 0, 0),
	/* user, password, will retain, will QoS 1, will, clean */
	CV("v311_connect_full", 0, SMQ_CONNECT,
	   0x10, 28, CV_MQTT, 4, 0xEE, 0, 30, 0, 2, 'c', '1', 0, 1, 'w', 0, 3, 'b', 'y', 'e',
	   0, 1, 'u', 0, 1, 'p'),
	CV("v311_connack_present", 4, SMQ_CONNACK, 0x20, 2, 0x01, 0x00),
	CV("v311_connack_refused", 4, SMQ_CONNACK, 0x20, 2, 0x00, 0x05),
	CV("v311_publish_qos0", 4, SMQ_PUBLISH, 0x30, 7, 0, 3, 'a', '/', 'b', 'h', 'i'),
	CV("v311_publish_qos1_dup_retain", 4, SMQ_PUBLISH,
	   0x3B, 9, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i'),
	CV("v311_publish_qos2_empty", 4, SMQ_PUBLISH, 0x34, 7, 0, 3, 'a', '/', 'b', 0x12, 0x34),
	CV("v311_publish_utf8_topic", 4, SMQ_PUBLISH,
	   0x30, 8, 0, 5, 'c', 'a', 'f', 0xC3, 0xA9, 'x'),
	CV("v311_puback", 4, SMQ_PUBACK, 0x40, 2, 0, 1),
	CV("v311_pubrec", 4, SMQ_PUBREC, 0x50, 2, 0, 1),
	CV("v311_pubrel", 4, SMQ_PUBREL, 0x62, 2, 0, 1),
	CV("v311_pubcomp", 4, SMQ_PUBCOMP, 0x70, 2, 0, 1),
	CV("v311_subscribe", 4, SMQ_SUBSCRIBE,
	   0x82, 12, 0, 10, 0, 3, 'a', '/', '+', 1, 0, 1, '#', 2),
	CV("v311_suback", 4, SMQ_SUBACK, 0x90, 4, 0, 10, 0x01, 0x80),
	CV("v311_unsubscribe", 4, SMQ_UNSUBSCRIBE,
	   0xA2, 10, 0, 11, 0, 3, 'a', '/', 'b', 0, 1, '#'),
	CV("v311_unsuback", 4, SMQ_UNSUBACK, 0xB0, 2, 0, 11),
	CV("v311_pingreq", 4, SMQ_PINGREQ, 0xC0, 0),
	CV("v311_pingresp", 4, SMQ_PINGRESP, 0xD0, 0),
	CV("v311_disconnect", 4, SMQ_DISCONNECT, 0xE0, 0),

	/* ---- 3.1 ---- */
	CV("v31_connect", 0, SMQ_CONNECT,
	   0x10, 17, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 60, 0, 3, 'c', 'i', 'd'),
	/* 30-byte client id: 3.1's 23-byte limit is the broker's business */
	CV("v31_connect_long_id", 0, SMQ_CONNECT,
	   0x10, 44, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 60, 0, 30,
	   CV_X10, CV_X10, CV_X10),
	/* user and password flags, fields missing: old 3.1 clients do this */
	CV("v31_connect_flags_no_login", 0, SMQ_CONNECT,
	   0x10, 17, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0xC2, 0, 60, 0, 3, 'c', 'i', 'd'),
	CV("v31_connack", 3, SMQ_CONNACK, 0x20, 2, 0x00, 0x00),
	CV("v31_publish_qos1", 3, SMQ_PUBLISH, 0x32, 8, 0, 3, 'a', '/', 'b', 0, 7, 'z'),
	CV("v31_pubrel_dup", 3, SMQ_PUBREL, 0x6A, 2, 0, 5),
	CV("v31_subscribe", 3, SMQ_SUBSCRIBE, 0x82, 8, 0, 2, 0, 3, 'a', '/', 'b', 1),
	CV("v31_unsubscribe_dup", 3, SMQ_UNSUBSCRIBE, 0xAA, 7, 0, 3, 0, 3, 'a', '/', 'b'),
	CV("v31_pingreq", 3, SMQ_PINGREQ, 0xC0, 0),
	CV("v31_disconnect", 3, SMQ_DISCONNECT, 0xE0, 0),

	/* ---- 5.0 ---- */
	CV("v5_connect_min", 0, SMQ_CONNECT,
	   0x10, 13, CV_MQTT, 5, 0x02, 0, 60, 0, 0, 0),
	/* every CONNECT and will property; user, password, will retain, QoS 2 */
	CV("v5_connect_full", 0, SMQ_CONNECT,
	   0x10, 105, CV_MQTT, 5, 0xF6, 0, 60,
	   39,
	   0x11, 0, 0, 0, 0x78,
	   0x21, 0, 20,
	   0x27, 0, 0, 0x10, 0,
	   0x22, 0, 10,
	   0x19, 1,
	   0x17, 0,
	   0x26, 0, 1, 'k', 0, 1, 'v',
	   0x15, 0, 4, 'S', 'C', 'R', 'M',
	   0x16, 0, 2, 1, 2,
	   0, 2, 'c', '5',
	   35,
	   0x18, 0, 0, 0, 5,
	   0x01, 1,
	   0x02, 0, 0, 0, 60,
	   0x03, 0, 4, 't', 'e', 'x', 't',
	   0x08, 0, 1, 'r',
	   0x09, 0, 2, 'c', 'd',
	   0x26, 0, 1, 'a', 0, 1, 'b',
	   0, 1, 'w', 0, 3, 'b', 'y', 'e', 0, 1, 'u', 0, 2, 'p', 'w'),
	/* 5.0 allows a password without a user name */
	CV("v5_connect_password_only", 0, SMQ_CONNECT,
	   0x10, 16, CV_MQTT, 5, 0x42, 0, 60, 0, 0, 0, 0, 1, 'p'),
	CV("v5_connack_min", 5, SMQ_CONNACK, 0x20, 3, 0x00, 0x00, 0),
	/* every CONNACK property */
	CV("v5_connack_full", 5, SMQ_CONNACK,
	   0x20, 66, 0x01, 0x00, 63,
	   0x11, 0, 0, 0, 10,
	   0x21, 0, 100,
	   0x24, 1,
	   0x25, 1,
	   0x27, 0, 0, 0x40, 0,
	   0x12, 0, 3, 'a', 'b', 'c',
	   0x22, 0, 5,
	   0x1F, 0, 2, 'o', 'k',
	   0x26, 0, 1, 'k', 0, 1, 'v',
	   0x28, 0,
	   0x29, 1,
	   0x2A, 1,
	   0x13, 0, 30,
	   0x1A, 0, 1, 'x',
	   0x1C, 0, 1, 'y',
	   0x15, 0, 1, 'm',
	   0x16, 0, 1, 'd'),
	CV("v5_connack_refused", 5, SMQ_CONNACK, 0x20, 3, 0x00, 0x87, 0),
	CV("v5_publish_qos0", 5, SMQ_PUBLISH, 0x30, 8, 0, 3, 'a', '/', 'b', 0, 'h', 'i'),
	/* every PUBLISH property; user properties with a subscription id between */
	CV("v5_publish_props", 5, SMQ_PUBLISH,
	   0x32, 55, 0, 3, 'a', '/', 'b', 0, 9,
	   45,
	   0x01, 1,
	   0x02, 0, 0, 0, 30,
	   0x23, 0, 4,
	   0x08, 0, 1, 'r',
	   0x09, 0, 2, 'c', 'd',
	   0x26, 0, 1, 'a', 0, 1, '1',
	   0x0B, 5,
	   0x26, 0, 1, 'b', 0, 1, '2',
	   0x0B, 0x80, 0x01,
	   0x03, 0, 4, 't', 'e', 'x', 't',
	   'h', 'i'),
	/* empty topic with a Topic Alias */
	CV("v5_publish_alias", 5, SMQ_PUBLISH, 0x30, 7, 0, 0, 3, 0x23, 0, 1, 'x'),
	CV("v5_puback_short", 5, SMQ_PUBACK, 0x40, 2, 0, 1),
	CV("v5_puback_reason", 5, SMQ_PUBACK, 0x40, 3, 0, 1, 0x10),
	CV("v5_puback_empty_props", 5, SMQ_PUBACK, 0x40, 4, 0, 1, 0x00, 0),
	CV("v5_puback_props", 5, SMQ_PUBACK,
	   0x40, 16, 0, 1, 0x80, 12, 0x1F, 0, 2, 'n', 'o', 0x26, 0, 1, 'k', 0, 1, 'v'),
	CV("v5_pubrec", 5, SMQ_PUBREC, 0x50, 3, 0, 2, 0x80),
	CV("v5_pubrel", 5, SMQ_PUBREL, 0x62, 3, 0, 2, 0x92),
	CV("v5_pubcomp", 5, SMQ_PUBCOMP, 0x70, 2, 0, 2),
	/* QoS 1, No Local, Retain As Published, Retain Handling 2 */
	CV("v5_subscribe", 5, SMQ_SUBSCRIBE,
	   0x82, 22, 0, 1, 9, 0x0B, 5, 0x26, 0, 1, 'k', 0, 1, 'v',
	   0, 3, 'a', '/', '+', 0x2D, 0, 1, '#', 0x00),
	CV("v5_suback", 5, SMQ_SUBACK, 0x90, 5, 0, 1, 0, 0x01, 0x80),
	CV("v5_suback_reason_string", 5, SMQ_SUBACK,
	   0x90, 10, 0, 1, 4, 0x1F, 0, 1, 'r', 0x00, 0x02, 0xA2),
	CV("v5_unsubscribe", 5, SMQ_UNSUBSCRIBE, 0xA2, 8, 0, 1, 0, 0, 3, 'a', '/', 'b'),
	CV("v5_unsuback", 5, SMQ_UNSUBACK, 0xB0, 5, 0, 1, 0, 0x00, 0x11),
	CV("v5_pingreq", 5, SMQ_PINGREQ, 0xC0, 0),
	CV("v5_pingresp", 5, SMQ_PINGRESP, 0xD0, 0),
	CV("v5_disconnect_short", 5, SMQ_DISCONNECT, 0xE0, 0),
	CV("v5_disconnect_reason", 5, SMQ_DISCONNECT, 0xE0, 1, 0x04),
	CV("v5_disconnect_props", 5, SMQ_DISCONNECT,
	   0xE0, 22, 0x8E, 20, 0x11, 0, 0, 0, 0, 0x1F, 0, 1, 'z', 0x1C, 0, 1, 's',
	   0x26, 0, 1, 'k', 0, 1, 'v'),
	CV("v5_auth_short", 5, SMQ_AUTH, 0xF0, 0),
	CV("v5_auth", 5, SMQ_AUTH,
	   0xF0, 18, 0x18, 16, 0x15, 0, 4, 'S', 'C', 'R', 'M', 0x16, 0, 2, 1, 2,
	   0x1F, 0, 1, 'c'),
};

#define CODEC_NVECS (sizeof(codec_vecs) / sizeof(codec_vecs[0]))

#endif
