/* toolprops.c - -D/--property: MQTT 5 properties by packet (see toolprops.h).
 *
 * One table says, for each property a client may name, its identifier, its
 * value type and the packets a client may put it in (MQTT 5 section 2.2.2
 * and the property sections of each packet). Parsing a -D is a table
 * lookup, a value check for the type, and a store into the packet's struct
 * smq_props, which the tools hand to the client library as they are.
 *
 * Invariant: t->p[cmd].user always views exactly the user properties added
 * so far for cmd (re-pointed after every append, since the buffer moves).
 *
 * Left to the tools: which packets they send (a tool that never sends
 * PUBACK ignores puback properties, as mosquitto's do); left to the codec:
 * the wire encoding.
 */
#include "cmd/lib/toolprops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/lib/toolopts.h"
#include "core/topic.h"

enum ptype { T_BYTE, T_U16, T_U32, T_VARINT, T_STR, T_BIN, T_PAIR };

#define M(c) (1u << SMQ_TOOL_P_##c)
#define M_ACKS (M(PUBACK) | M(PUBREC) | M(PUBREL) | M(PUBCOMP))
#define M_ALL ((1u << SMQ_TOOL_P_NCMDS) - 1)

static const char *const cmd_names[SMQ_TOOL_P_NCMDS] = {
	"connect", "publish", "puback", "pubrec", "pubrel", "pubcomp",
	"subscribe", "unsubscribe", "disconnect", "auth", "will",
};

/* What a client may send; mask 0: only a server sends it. */
static const struct pdef {
	const char *name;
	uint8_t id;
	uint8_t type;
	uint32_t mask;
} pdefs[] = {
	{ "payload-format-indicator", SMQ_PROP_PAYLOAD_FORMAT, T_BYTE, M(PUBLISH) | M(WILL) },
	{ "message-expiry-interval", SMQ_PROP_MESSAGE_EXPIRY, T_U32, M(PUBLISH) | M(WILL) },
	{ "content-type", SMQ_PROP_CONTENT_TYPE, T_STR, M(PUBLISH) | M(WILL) },
	{ "response-topic", SMQ_PROP_RESPONSE_TOPIC, T_STR, M(PUBLISH) | M(WILL) },
	{ "correlation-data", SMQ_PROP_CORRELATION_DATA, T_BIN, M(PUBLISH) | M(WILL) },
	{ "subscription-identifier", SMQ_PROP_SUBSCRIPTION_ID, T_VARINT, M(SUBSCRIBE) },
	{ "session-expiry-interval", SMQ_PROP_SESSION_EXPIRY, T_U32, M(CONNECT) | M(DISCONNECT) },
	{ "assigned-client-identifier", SMQ_PROP_ASSIGNED_CLIENT_ID, T_STR, 0 },
	{ "server-keep-alive", SMQ_PROP_SERVER_KEEP_ALIVE, T_U16, 0 },
	{ "authentication-method", SMQ_PROP_AUTH_METHOD, T_STR, M(CONNECT) | M(AUTH) },
	{ "authentication-data", SMQ_PROP_AUTH_DATA, T_BIN, M(CONNECT) | M(AUTH) },
	{ "request-problem-information", SMQ_PROP_REQUEST_PROBLEM_INFO, T_BYTE, M(CONNECT) },
	{ "will-delay-interval", SMQ_PROP_WILL_DELAY, T_U32, M(WILL) },
	{ "request-response-information", SMQ_PROP_REQUEST_RESPONSE_INFO, T_BYTE, M(CONNECT) },
	{ "response-information", SMQ_PROP_RESPONSE_INFO, T_STR, 0 },
	{ "server-reference", SMQ_PROP_SERVER_REFERENCE, T_STR, 0 },
	{ "reason-string", SMQ_PROP_REASON_STRING, T_STR, M_ACKS | M(DISCONNECT) | M(AUTH) },
	{ "receive-maximum", SMQ_PROP_RECEIVE_MAX, T_U16, M(CONNECT) },
	{ "topic-alias-maximum", SMQ_PROP_TOPIC_ALIAS_MAX, T_U16, M(CONNECT) },
	{ "topic-alias", SMQ_PROP_TOPIC_ALIAS, T_U16, M(PUBLISH) },
	{ "maximum-qos", SMQ_PROP_MAX_QOS, T_BYTE, 0 },
	{ "retain-available", SMQ_PROP_RETAIN_AVAILABLE, T_BYTE, 0 },
	{ "user-property", SMQ_PROP_USER, T_PAIR, M_ALL },
	{ "maximum-packet-size", SMQ_PROP_MAX_PACKET_SIZE, T_U32, M(CONNECT) },
	{ "wildcard-subscription-available", SMQ_PROP_WILDCARD_SUB_AVAILABLE, T_BYTE, 0 },
	{ "subscription-identifier-available", SMQ_PROP_SUB_ID_AVAILABLE, T_BYTE, 0 },
	{ "shared-subscription-available", SMQ_PROP_SHARED_SUB_AVAILABLE, T_BYTE, 0 },
};

static const struct pdef *find_pdef(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(pdefs) / sizeof(pdefs[0]); i++)
		if (!strcmp(pdefs[i].name, name))
			return &pdefs[i];
	return NULL;
}

static int find_cmd(const char *name)
{
	int i;

	for (i = 0; i < SMQ_TOOL_P_NCMDS; i++)
		if (!strcmp(cmd_names[i], name))
			return i;
	return -1;
}

/* "connect, disconnect": the packets of @mask, for the error message. */
static void mask_words(uint32_t mask, char *buf, size_t cap)
{
	size_t len = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < SMQ_TOOL_P_NCMDS; i++)
		if (mask & (1u << i) && len < cap)
			len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "",
						cmd_names[i]);
}

static struct smq_str str(const char *s)
{
	return (struct smq_str){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

/* Append one user property to @cmd's buffer. */
static int add_user(struct smq_tool_props *t, int cmd, const char *k, const char *v)
{
	struct smq_props *p = &t->p[cmd];
	size_t need = p->user.len + 5 + strlen(k) + strlen(v);
	uint8_t *buf = t->user[cmd];
	long n;

	if (strlen(k) > 65535 || strlen(v) > 65535 || !smq_utf8_valid(str(k).p, strlen(k)) ||
	    !smq_utf8_valid(str(v).p, strlen(v)))
		return smq_tool_bad("-D %s user-property: key and value must be UTF-8 of at "
				    "most 65535 bytes", cmd_names[cmd]);
	if (need > t->user_cap[cmd]) {
		buf = realloc(buf, need * 2);
		if (!buf)
			return smq_tool_bad("out of memory");
		t->user[cmd] = buf;
		t->user_cap[cmd] = need * 2;
	}
	n = smq_props_put_user(buf + p->user.len, t->user_cap[cmd] - p->user.len, str(k), str(v));
	p->user = (struct smq_str){ buf, p->user.len + (uint32_t)n };
	SMQ_SET(p, SMQ_PROP_USER);
	return 0;
}

/* Parse @v as an integer for @type: false if out of its range. */
static bool int_value(const char *v, uint8_t type, uint32_t *out)
{
	static const unsigned long max[] = {
		[T_BYTE] = 0xFF, [T_U16] = 0xFFFF, [T_U32] = 0xFFFFFFFFul,
		[T_VARINT] = SMQ_MAX_REMAINING,
	};
	unsigned long n;

	if (!smq_tool_parse_uint(v, max[type], &n))
		return false;
	*out = (uint32_t)n;
	return true;
}

/* The value rules beyond the type's range (section 3.1.2.11 and 3.3.2.3). */
static bool value_ok(uint8_t id, uint32_t n)
{
	switch (id) {
	case SMQ_PROP_PAYLOAD_FORMAT:
	case SMQ_PROP_REQUEST_PROBLEM_INFO:
	case SMQ_PROP_REQUEST_RESPONSE_INFO:
		return n <= 1;
	case SMQ_PROP_RECEIVE_MAX:
	case SMQ_PROP_MAX_PACKET_SIZE:
	case SMQ_PROP_SUBSCRIPTION_ID:
		return n != 0;
	}
	return true;
}

static void set_int(struct smq_props *p, uint8_t id, uint32_t n)
{
	switch (id) {
	case SMQ_PROP_PAYLOAD_FORMAT: p->payload_format = (uint8_t)n; break;
	case SMQ_PROP_MESSAGE_EXPIRY: p->message_expiry = n; break;
	case SMQ_PROP_SUBSCRIPTION_ID: p->sub_id = n; break;
	case SMQ_PROP_SESSION_EXPIRY: p->session_expiry = n; break;
	case SMQ_PROP_REQUEST_PROBLEM_INFO: p->request_problem_info = (uint8_t)n; break;
	case SMQ_PROP_WILL_DELAY: p->will_delay = n; break;
	case SMQ_PROP_REQUEST_RESPONSE_INFO: p->request_response_info = (uint8_t)n; break;
	case SMQ_PROP_RECEIVE_MAX: p->receive_max = (uint16_t)n; break;
	case SMQ_PROP_TOPIC_ALIAS_MAX: p->topic_alias_max = (uint16_t)n; break;
	case SMQ_PROP_MAX_PACKET_SIZE: p->max_packet_size = n; break;
	}
}

static int set_str(struct smq_props *p, const struct pdef *d, const char *cmd, const char *v)
{
	struct smq_str s = str(v);

	if (s.len > 65535 || (d->type == T_STR && !smq_utf8_valid(s.p, s.len)))
		return smq_tool_bad("-D %s %s: the value must be %s of at most 65535 bytes", cmd,
				    d->name, d->type == T_STR ? "UTF-8" : "data");
	/* [MQTT-3.3.2-14] the response topic is a topic name */
	if (d->id == SMQ_PROP_RESPONSE_TOPIC && !smq_topic_name_valid(s))
		return smq_tool_bad("-D %s response-topic: '%s' is not a topic name (no '+' "
				    "or '#')", cmd, v);
	switch (d->id) {
	case SMQ_PROP_CONTENT_TYPE: p->content_type = s; break;
	case SMQ_PROP_RESPONSE_TOPIC: p->response_topic = s; break;
	case SMQ_PROP_CORRELATION_DATA: p->correlation_data = s; break;
	case SMQ_PROP_AUTH_METHOD: p->auth_method = s; break;
	case SMQ_PROP_AUTH_DATA: p->auth_data = s; break;
	case SMQ_PROP_REASON_STRING: p->reason_string = s; break;
	}
	return 0;
}

int smq_tool_props_add(struct smq_tool_props *t, const char *cmd, const char *name,
		       const char *value, const char *value2)
{
	const struct pdef *d = find_pdef(name);
	int c = find_cmd(cmd);
	char where[160];
	uint32_t n;

	if (c < 0)
		return smq_tool_bad("-D: unknown packet '%s' (connect, publish, subscribe, "
				    "unsubscribe, disconnect, will, puback, pubrec, pubrel, "
				    "pubcomp, auth)", cmd);
	if (!d)
		return smq_tool_bad("-D %s: unknown property '%s'", cmd, name);
	if (!(d->mask & (1u << c))) {
		mask_words(d->mask, where, sizeof(where));
		if (!d->mask)
			return smq_tool_bad("-D %s %s: only a server sends this property", cmd,
					    name);
		return smq_tool_bad("-D %s %s: this property does not fit a %s packet "
				    "(it may go in: %s)", cmd, name, cmd, where);
	}
	if (d->id == SMQ_PROP_TOPIC_ALIAS)
		return smq_tool_bad("-D publish topic-alias: not supported (the topic is sent "
				    "in full with every message)");
	t->any = true;
	if (d->type == T_PAIR) {
		if (!value2)
			return smq_tool_bad("-D %s user-property needs a key and a value", cmd);
		return add_user(t, c, value, value2);
	}
	if (SMQ_HAS(&t->p[c], d->id))	/* [MQTT-2.2.2-2]: only user properties repeat */
		return smq_tool_bad("-D %s %s given twice", cmd, name);
	if (d->type == T_STR || d->type == T_BIN) {
		if (set_str(&t->p[c], d, cmd, value))
			return SMQ_TOOL_EXIT_USAGE;
	} else {
		if (!int_value(value, d->type, &n) || !value_ok(d->id, n))
			return smq_tool_bad("-D %s %s: invalid value '%s'", cmd, name, value);
		set_int(&t->p[c], d->id, n);
	}
	SMQ_SET(&t->p[c], d->id);
	return 0;
}

const struct smq_props *smq_tool_props_get(const struct smq_tool_props *t,
					   enum smq_tool_pcmd cmd)
{
	return t->p[cmd].present ? &t->p[cmd] : NULL;
}

void smq_tool_props_fini(struct smq_tool_props *t)
{
	int i;

	for (i = 0; i < SMQ_TOOL_P_NCMDS; i++) {
		free(t->user[i]);
		t->user[i] = NULL;
	}
}
