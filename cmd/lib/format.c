/* format.c - mosquitto_sub's -F output format and JSON (see format.h).
 *
 * A format is walked twice: once by smq_tool_format_check() before the
 * connection, so that a typo is a usage error and not a surprise at the
 * first message, and once per message by smq_tool_format_print(), which can
 * then trust it. Each %-part is rendered into a small buffer first and
 * padded after, so that width, alignment and maximum width apply to every
 * part alike.
 *
 * JSON (%j, %J) follows mosquitto_sub 2.0's shape: tst, topic, qos,
 * retain, payloadlen, mid (QoS > 0), properties (5.0, when any), payload.
 * The time keeps mosquitto's spelling ("2026-12-03T13:14:52.795862Z+0000")
 * so that scripts parsing it keep working. --pretty indents as cJSON does
 * (tabs, a tab after each colon, arrays on one line). A %J payload is
 * checked by a small recursive-descent JSON reader, then printed again by
 * the same reader, compact or pretty, strings and numbers as cJSON prints
 * them (mosquitto_sub parses the payload with cJSON and prints it again).
 * Properties come in a fixed order (user properties, content type,
 * correlation data, response topic, payload format, expiry, alias,
 * subscription id); mosquitto_sub keeps the order they came in.
 *
 * Left to the caller: the newline after the message (-N), flushing.
 */
#include "cmd/lib/format.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/lib/toolopts.h"

#define JSON_DEPTH 64

/* ---- checking ---------------------------------------------------------- */

/* Skip flags, width and maximum width after a '%' at @s: the conversion. */
static const char *spec_end(const char *s)
{
	if (*s == '-' || *s == '0')
		s++;
	while (*s >= '0' && *s <= '9')
		s++;
	if (*s == '.') {
		s++;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return s;
}

int smq_tool_format_check(const char *fmt)
{
	const char *s;

	for (s = fmt; *s; s++) {
		if (*s == '%') {
			s = spec_end(s + 1);
			if (!*s)
				return smq_tool_bad("-F: incomplete format specifier");
			if (!strchr("%ACDEFIlmPpqRrStjJUxX", *s))
				return smq_tool_bad("-F: invalid format specifier '%c'", *s);
		} else if (*s == '@') {
			if (!*++s)
				return smq_tool_bad("-F: incomplete format specifier");
		} else if (*s == '\\') {
			if (!*++s)
				return smq_tool_bad("-F: incomplete escape specifier");
			if (!strchr("\\0aenrtv", *s))
				return smq_tool_bad("-F: invalid escape specifier '%c'", *s);
		}
	}
	return 0;
}

/* ---- a growable buffer for one part ------------------------------------ */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_add(struct sbuf *b, const void *p, size_t n)
{
	char *q;

	if (b->len + n > b->cap) {
		q = realloc(b->p, (b->len + n) * 2 + 64);
		if (!q)
			return;		/* out of memory: the part comes out short */
		b->p = q;
		b->cap = (b->len + n) * 2 + 64;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void sb_str(struct sbuf *b, struct smq_str s)
{
	sb_add(b, s.p, s.len);
}

static void sb_tabs(struct sbuf *b, int n)
{
	while (n-- > 0)
		sb_add(b, "\t", 1);
}

/* ---- JSON -------------------------------------------------------------- */

/* A JSON writer: keys and values in order, commas and indentation here. */
struct jw {
	struct sbuf *b;
	bool pretty;
	int depth;
	bool first[JSON_DEPTH + 2];
	bool array[JSON_DEPTH + 2];
};

static void jw_open(struct jw *w, char c)
{
	sb_add(w->b, &c, 1);
	w->depth++;
	w->first[w->depth] = true;
	w->array[w->depth] = c == '[';
}

static void jw_close(struct jw *w, char c)
{
	w->depth--;
	if (w->pretty && c == '}') {	/* cJSON: even "{\n}" when empty */
		sb_add(w->b, "\n", 1);
		sb_tabs(w->b, w->depth);
	}
	sb_add(w->b, &c, 1);
}

/* Before an array element. */
static void jw_elem(struct jw *w)
{
	if (!w->first[w->depth])
		sb_add(w->b, w->pretty ? ", " : ",", w->pretty ? 2 : 1);
	w->first[w->depth] = false;
}

static void jw_quoted(struct jw *w, struct smq_str s)
{
	uint32_t i;
	uint8_t c;

	sb_add(w->b, "\"", 1);
	for (i = 0; i < s.len; i++) {
		c = s.p[i];
		switch (c) {
		case '"': sb_add(w->b, "\\\"", 2); break;
		case '\\': sb_add(w->b, "\\\\", 2); break;
		case '\b': sb_add(w->b, "\\b", 2); break;
		case '\f': sb_add(w->b, "\\f", 2); break;
		case '\n': sb_add(w->b, "\\n", 2); break;
		case '\r': sb_add(w->b, "\\r", 2); break;
		case '\t': sb_add(w->b, "\\t", 2); break;
		default:
			if (c < 0x20)
				sb_printf(w->b, "\\u%04x", c);
			else
				sb_add(w->b, &c, 1);
		}
	}
	sb_add(w->b, "\"", 1);
}

/* Before an object member's value: the comma, the indentation, the key. */
static void jw_key(struct jw *w, struct smq_str key)
{
	if (!w->first[w->depth])
		sb_add(w->b, ",", 1);
	w->first[w->depth] = false;
	if (w->pretty) {
		sb_add(w->b, "\n", 1);
		sb_tabs(w->b, w->depth);
	}
	jw_quoted(w, key);
	sb_add(w->b, w->pretty ? ":\t" : ":", w->pretty ? 2 : 1);
}

static void jw_ckey(struct jw *w, const char *key)
{
	jw_key(w, (struct smq_str){ (const uint8_t *)key, (uint32_t)strlen(key) });
}

/* A reader of JSON text that validates and, with a writer, re-prints. */
struct jr {
	const uint8_t *p, *end;
	struct jw *w;		/* NULL: only check */
};

static void jr_ws(struct jr *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static bool jr_lit(struct jr *r, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n))
		return false;
	if (r->w)
		sb_add(r->w->b, lit, n);
	r->p += n;
	return true;
}

static bool is_digit(const struct jr *r)
{
	return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

/* The number @s (checked) printed again as cJSON prints numbers, which is
 * what mosquitto_sub's %J shows: an int when it is one, else the shortest
 * of %1.15g and %1.17g that reads back the same ("-1.5e3" is "-1500"). */
static void number_again(struct sbuf *b, struct smq_str s)
{
	char tmp[64], out[64];
	double d;

	if (s.len >= sizeof(tmp)) {
		sb_str(b, s);	/* absurdly long: as written */
		return;
	}
	memcpy(tmp, s.p, s.len);
	tmp[s.len] = '\0';
	d = strtod(tmp, NULL);
	if (d >= INT_MIN && d <= INT_MAX && d == (double)(int)d) {
		sb_printf(b, "%d", (int)d);
		return;
	}
	if (d != d || d - d != 0) {	/* NaN or infinite (overflow) */
		sb_add(b, "null", 4);
		return;
	}
	snprintf(out, sizeof(out), "%1.15g", d);
	if (strtod(out, NULL) != d)
		snprintf(out, sizeof(out), "%1.17g", d);
	sb_add(b, out, strlen(out));
}

static bool jr_number(struct jr *r)
{
	const uint8_t *start = r->p;

	if (r->p < r->end && *r->p == '-')
		r->p++;
	if (!is_digit(r))
		return false;
	if (*r->p == '0')
		r->p++;
	while (is_digit(r))
		r->p++;
	if (r->p < r->end && *r->p == '.') {
		r->p++;
		if (!is_digit(r))
			return false;
		while (is_digit(r))
			r->p++;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		if (!is_digit(r))
			return false;
		while (is_digit(r))
			r->p++;
	}
	if (r->w)
		number_again(r->w->b, (struct smq_str){ start, (uint32_t)(r->p - start) });
	return true;
}

static char escape_json(uint8_t c);

static unsigned hex4(const uint8_t *p)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++)
		v = v << 4 | (unsigned)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
	return v;
}

static void put_utf8(struct sbuf *b, unsigned cp)
{
	uint8_t u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xC0 | cp >> 6);
		u[1] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xE0 | cp >> 12);
		u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
		u[2] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (uint8_t)(0xF0 | cp >> 18);
		u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
		u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
		u[3] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 4;
	}
	sb_add(b, u, n);
}

/* The text of the (checked) JSON string @s, escapes undone, into @b: so
 * that it is printed again as cJSON prints strings ("\u00e9" becomes the
 * UTF-8 of U+00E9, "\/" becomes "/"). */
static void unescape(struct sbuf *b, struct smq_str s)
{
	const uint8_t *p = s.p + 1, *end = s.p + s.len - 1;
	unsigned cp, lo;

	while (p < end) {
		if (*p != '\\') {
			sb_add(b, p++, 1);
			continue;
		}
		p++;
		if (*p != 'u') {
			sb_printf(b, "%c", escape_json(*p++));
			continue;
		}
		cp = hex4(p + 1);
		p += 5;
		if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
			lo = hex4(p + 2);
			if (lo >= 0xDC00 && lo < 0xE000) {
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				p += 6;
			}
		}
		put_utf8(b, cp);
	}
}

/* A string, copied as written (quotes and escapes included) into @out. */
static bool jr_string(struct jr *r, struct smq_str *out)
{
	const uint8_t *start = r->p;
	int i;

	if (r->p >= r->end || *r->p != '"')
		return false;
	for (r->p++; r->p < r->end && *r->p != '"'; r->p++) {
		if (*r->p < 0x20)
			return false;
		if (*r->p != '\\')
			continue;
		if (++r->p >= r->end)
			return false;
		if (*r->p == 'u') {
			for (i = 0; i < 4; i++)
				if (++r->p >= r->end || !strchr("0123456789abcdefABCDEF", *r->p))
					return false;
		} else if (!strchr("\"\\/bfnrt", *r->p)) {
			return false;
		}
	}
	if (r->p >= r->end)
		return false;
	r->p++;
	*out = (struct smq_str){ start, (uint32_t)(r->p - start) };
	return true;
}

static char escape_json(uint8_t c)
{
	switch (c) {
	case 'b': return '\b';
	case 'f': return '\f';
	case 'n': return '\n';
	case 'r': return '\r';
	case 't': return '\t';
	}
	return (char)c;	/* '"', '\\', '/' */
}

/* The JSON string @s (as written) printed again, cJSON's way. */
static void jw_text(struct jw *w, struct smq_str s)
{
	struct sbuf t = { 0 };

	unescape(&t, s);
	jw_quoted(w, (struct smq_str){ (const uint8_t *)t.p, (uint32_t)t.len });
	free(t.p);
}

static void jw_text_key(struct jw *w, struct smq_str s)
{
	struct sbuf t = { 0 };

	unescape(&t, s);
	jw_key(w, (struct smq_str){ (const uint8_t *)t.p, (uint32_t)t.len });
	free(t.p);
}

static bool jr_value(struct jr *r, int depth);

static bool jr_object(struct jr *r, int depth)
{
	struct smq_str key;

	r->p++;
	if (r->w)
		jw_open(r->w, '{');
	jr_ws(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		if (r->w)
			jw_close(r->w, '}');
		return true;
	}
	for (;;) {
		jr_ws(r);
		if (!jr_string(r, &key))
			return false;
		if (r->w)
			jw_text_key(r->w, key);
		jr_ws(r);
		if (r->p >= r->end || *r->p++ != ':' || !jr_value(r, depth + 1))
			return false;
		jr_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p >= r->end || *r->p++ != '}')
			return false;
		if (r->w)
			jw_close(r->w, '}');
		return true;
	}
}

static bool jr_array(struct jr *r, int depth)
{
	r->p++;
	if (r->w)
		jw_open(r->w, '[');
	jr_ws(r);
	if (r->p < r->end && *r->p == ']') {
		r->p++;
		if (r->w)
			jw_close(r->w, ']');
		return true;
	}
	for (;;) {
		if (r->w)
			jw_elem(r->w);
		if (!jr_value(r, depth + 1))
			return false;
		jr_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p >= r->end || *r->p++ != ']')
			return false;
		if (r->w)
			jw_close(r->w, ']');
		return true;
	}
}

static bool jr_value(struct jr *r, int depth)
{
	struct smq_str s;

	jr_ws(r);
	if (r->p >= r->end || depth > JSON_DEPTH)
		return false;
	switch (*r->p) {
	case '{':
		return jr_object(r, depth);
	case '[':
		return jr_array(r, depth);
	case '"':
		if (!jr_string(r, &s))
			return false;
		if (r->w)
			jw_text(r->w, s);
		return true;
	case 't':
		return jr_lit(r, "true");
	case 'f':
		return jr_lit(r, "false");
	case 'n':
		return jr_lit(r, "null");
	}
	return jr_number(r);
}

/* Is @s one JSON value (surrounded by white space at most)? */
static bool json_valid(struct smq_str s)
{
	struct jr r = { s.p, s.p + s.len, NULL };

	if (!jr_value(&r, 0))
		return false;
	jr_ws(&r);
	return r.p == r.end;
}

/* ---- the time of a message --------------------------------------------- */

struct when {
	struct timespec ts;
	struct tm tm;
};

static void sb_strftime(struct sbuf *b, const char *fmt, const struct tm *tm)
{
	char tmp[128];
	size_t n = strftime(tmp, sizeof(tmp), fmt, tm);

	sb_add(b, tmp, n);
}

/* mosquitto_sub 2.0's JSON time: "2026-12-03T13:14:52.795862Z+0000". */
static void sb_json_time(struct sbuf *b, const struct when *t)
{
	sb_strftime(b, "%Y-%m-%dT%H:%M:%S", &t->tm);
	sb_printf(b, ".%06ldZ", t->ts.tv_nsec / 1000);
	sb_strftime(b, "%z", &t->tm);
}

/* ---- JSON of a message --------------------------------------------------- */

static void json_props(struct jw *w, const struct smq_props *p)
{
	struct smq_str k, v;
	uint32_t pos = 0;

	jw_ckey(w, "properties");
	jw_open(w, '{');
	if (SMQ_HAS(p, SMQ_PROP_USER)) {
		jw_ckey(w, "user-properties");
		jw_open(w, '{');
		while (smq_props_next_user(p, &pos, &k, &v)) {
			jw_key(w, k);
			jw_quoted(w, v);
		}
		jw_close(w, '}');
	}
	if (SMQ_HAS(p, SMQ_PROP_CONTENT_TYPE)) {
		jw_ckey(w, "content-type");
		jw_quoted(w, p->content_type);
	}
	if (SMQ_HAS(p, SMQ_PROP_CORRELATION_DATA)) {
		jw_ckey(w, "correlation-data");
		jw_quoted(w, p->correlation_data);
	}
	if (SMQ_HAS(p, SMQ_PROP_RESPONSE_TOPIC)) {
		jw_ckey(w, "response-topic");
		jw_quoted(w, p->response_topic);
	}
	if (SMQ_HAS(p, SMQ_PROP_PAYLOAD_FORMAT)) {
		jw_ckey(w, "payload-format-indicator");
		sb_printf(w->b, "%u", p->payload_format);
	}
	if (SMQ_HAS(p, SMQ_PROP_MESSAGE_EXPIRY)) {
		jw_ckey(w, "message-expiry-interval");
		sb_printf(w->b, "%u", p->message_expiry);
	}
	if (SMQ_HAS(p, SMQ_PROP_TOPIC_ALIAS)) {
		jw_ckey(w, "topic-alias");
		sb_printf(w->b, "%u", p->topic_alias);
	}
	if (SMQ_HAS(p, SMQ_PROP_SUBSCRIPTION_ID)) {
		jw_ckey(w, "subscription-identifier");
		sb_printf(w->b, "%u", p->sub_id);
	}
	jw_close(w, '}');
}

/* %j (@as_json false: payload quoted) or %J; false if %J's payload is not
 * JSON (nothing is added to @b then). */
static bool json_message(struct sbuf *b, const struct smq_client_event *ev,
			 const struct when *t, bool as_json, bool pretty)
{
	struct jw w = { .b = b, .pretty = pretty };
	struct jr r = { ev->msg.payload.p, ev->msg.payload.p + ev->msg.payload.len, &w };
	struct sbuf tst = { 0 };

	if (as_json && !json_valid(ev->msg.payload))
		return false;
	jw_open(&w, '{');
	jw_ckey(&w, "tst");
	sb_json_time(&tst, t);
	jw_quoted(&w, (struct smq_str){ (const uint8_t *)tst.p, (uint32_t)tst.len });
	free(tst.p);
	jw_ckey(&w, "topic");
	jw_quoted(&w, ev->msg.topic);
	jw_ckey(&w, "qos");
	sb_printf(b, "%u", ev->msg.qos);
	jw_ckey(&w, "retain");
	sb_printf(b, "%d", ev->msg.retain);
	jw_ckey(&w, "payloadlen");
	sb_printf(b, "%u", ev->msg.payload.len);
	if (ev->msg.qos) {
		jw_ckey(&w, "mid");
		sb_printf(b, "%u", ev->packet_id);
	}
	if (ev->props.present)
		json_props(&w, &ev->props);
	jw_ckey(&w, "payload");
	if (as_json)
		jr_value(&r, 0);	/* checked above */
	else
		jw_quoted(&w, ev->msg.payload);
	jw_close(&w, '}');
	return true;
}

/* ---- printing ------------------------------------------------------------ */

struct spec {
	bool left, zero;
	int width;
	int maxw;		/* -1: none */
	char conv;
};

static const char *parse_spec(const char *s, struct spec *sp)
{
	*sp = (struct spec){ .maxw = -1 };
	if (*s == '-' || *s == '0') {
		sp->left = *s == '-';
		sp->zero = *s == '0';
		s++;
	}
	while (*s >= '0' && *s <= '9')
		sp->width = sp->width * 10 + (*s++ - '0');
	if (*s == '.') {
		sp->maxw = 0;
		for (s++; *s >= '0' && *s <= '9'; s++)
			sp->maxw = sp->maxw * 10 + (*s - '0');
	}
	sp->conv = *s;
	return s;
}

static void hex(struct sbuf *b, struct smq_str s, bool upper)
{
	uint32_t i;

	for (i = 0; i < s.len; i++)
		sb_printf(b, upper ? "%02X" : "%02x", s.p[i]);
}

static void user_props(struct sbuf *b, const struct smq_props *p)
{
	struct smq_str k, v;
	uint32_t pos = 0;
	bool first = true;

	while (smq_props_next_user(p, &pos, &k, &v)) {
		if (!first)
			sb_add(b, " ", 1);
		first = false;
		sb_str(b, k);
		sb_add(b, ":", 1);
		sb_str(b, v);
	}
}

/* A property part: the number (or string) when present, else nothing. */
static void prop_part(struct sbuf *b, const struct smq_props *p, char conv)
{
	switch (conv) {
	case 'A':
		if (SMQ_HAS(p, SMQ_PROP_TOPIC_ALIAS))
			sb_printf(b, "%u", p->topic_alias);
		break;
	case 'C':
		if (SMQ_HAS(p, SMQ_PROP_CONTENT_TYPE))
			sb_str(b, p->content_type);
		break;
	case 'D':
		if (SMQ_HAS(p, SMQ_PROP_CORRELATION_DATA))
			sb_str(b, p->correlation_data);
		break;
	case 'E':
		if (SMQ_HAS(p, SMQ_PROP_MESSAGE_EXPIRY))
			sb_printf(b, "%u", p->message_expiry);
		break;
	case 'F':
		if (SMQ_HAS(p, SMQ_PROP_PAYLOAD_FORMAT))
			sb_printf(b, "%u", p->payload_format);
		break;
	case 'P':
		user_props(b, p);
		break;
	case 'R':
		if (SMQ_HAS(p, SMQ_PROP_RESPONSE_TOPIC))
			sb_str(b, p->response_topic);
		break;
	case 'S':
		if (SMQ_HAS(p, SMQ_PROP_SUBSCRIPTION_ID))
			sb_printf(b, "%u", p->sub_id);
		break;
	}
}

/* mosquitto_sub 2.0 prints at most width bytes of %p, and of %x / %X
 * at most width / 2 bytes of the first width: "%8x" of "hello" is
 * "68656c6c", "%3x" of "abc" is " 61". Scripts may rely on it, so do we. */
static struct smq_str cut(struct smq_str s, const struct spec *sp, bool hexed)
{
	uint32_t n = s.len;

	if (sp->width <= 0)
		return s;
	if (n > (uint32_t)sp->width)
		n = (uint32_t)sp->width;
	if (hexed)
		n /= 2;
	return (struct smq_str){ s.p, n };
}

/* Render one %-part into @b; false when nothing is to be printed. */
static bool render(struct sbuf *b, const struct spec *sp, const struct smq_client_event *ev,
		   const struct when *t, bool pretty)
{
	switch (sp->conv) {
	case '%': sb_add(b, "%", 1); break;
	case 't': sb_str(b, ev->msg.topic); break;
	case 'p': sb_str(b, cut(ev->msg.payload, sp, false)); break;
	case 'q': sb_printf(b, "%u", ev->msg.qos); break;
	case 'r': sb_printf(b, "%d", ev->msg.retain); break;
	case 'l': sb_printf(b, "%u", ev->msg.payload.len); break;
	case 'm': sb_printf(b, "%u", ev->packet_id); break;
	case 'x': hex(b, cut(ev->msg.payload, sp, true), false); break;
	case 'X': hex(b, cut(ev->msg.payload, sp, true), true); break;
	case 'I': sb_strftime(b, "%Y-%m-%dT%H:%M:%S%z", &t->tm); break;
	case 'U': sb_printf(b, "%lld.%09ld", (long long)t->ts.tv_sec, t->ts.tv_nsec); break;
	case 'j':
	case 'J':
		if (!json_message(b, ev, t, sp->conv == 'J', pretty)) {
			fprintf(stderr, "Error: Message payload is not valid JSON on topic %.*s.\n",
				(int)ev->msg.topic.len, ev->msg.topic.p);
			return false;
		}
		break;
	default:
		prop_part(b, &ev->props, sp->conv);
	}
	return true;
}

/* Which parts take '0', and which a maximum width (mosquitto_sub(1)). */
static bool zero_ok(char conv)
{
	return strchr("AEFlmSxXp", conv) != NULL;	/* 'p': as mosquitto_sub does */
}

static bool maxw_ok(char conv)
{
	return strchr("CIRt", conv) != NULL;
}

static void pad(FILE *out, char c, int n)
{
	while (n-- > 0)
		fputc(c, out);
}

static void print_part(FILE *out, const struct spec *sp, struct sbuf *b)
{
	size_t len = b->len;
	int fill;

	if (sp->maxw >= 0 && maxw_ok(sp->conv) && len > (size_t)sp->maxw)
		len = (size_t)sp->maxw;
	fill = sp->width > (int)len ? sp->width - (int)len : 0;
	if (!sp->left)
		pad(out, sp->zero && zero_ok(sp->conv) ? '0' : ' ', fill);
	fwrite(b->p, 1, len, out);
	if (sp->left)
		pad(out, ' ', fill);
}

static char escape(char c)
{
	switch (c) {
	case '0': return '\0';
	case 'a': return '\a';
	case 'e': return '\033';
	case 'n': return '\n';
	case 'r': return '\r';
	case 't': return '\t';
	case 'v': return '\v';
	}
	return c;	/* '\\' */
}

/* @X: strftime's %X, or the nanoseconds (@N), or '@' (@@). */
static void at_part(FILE *out, char c, const struct when *t)
{
	char f[3] = { '%', c, '\0' }, tmp[128];
	size_t n;

	if (c == 'N') {
		fprintf(out, "%09ld", t->ts.tv_nsec);
		return;
	}
	if (c == '@') {
		fputc('@', out);
		return;
	}
	n = strftime(tmp, sizeof(tmp), f, &t->tm);
	fwrite(tmp, 1, n, out);
}

void smq_tool_format_print(FILE *out, const char *fmt, const struct smq_client_event *ev,
			   bool pretty)
{
	struct sbuf b = { 0 };
	struct spec sp;
	struct when t;
	const char *s;

	clock_gettime(CLOCK_REALTIME, &t.ts);
	localtime_r(&t.ts.tv_sec, &t.tm);
	for (s = fmt; *s; s++) {
		if (*s == '%' && s[1]) {
			s = parse_spec(s + 1, &sp);
			b.len = 0;
			if (render(&b, &sp, ev, &t, pretty))
				print_part(out, &sp, &b);
		} else if (*s == '@' && s[1]) {
			at_part(out, *++s, &t);
		} else if (*s == '\\' && s[1]) {
			fputc(escape(*++s), out);
		} else {
			fputc(*s, out);
		}
	}
	free(b.p);
}

void smq_tool_format_plain(FILE *out, const struct smq_client_event *ev, bool verbose)
{
	if (verbose) {
		fwrite(ev->msg.topic.p, 1, ev->msg.topic.len, out);
		fputc(' ', out);
	}
	fwrite(ev->msg.payload.p, 1, ev->msg.payload.len, out);
}
