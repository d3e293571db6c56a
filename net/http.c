/* http.c - the HTTP/1.1 request-head parser of http.h, and response heads.
 *
 * Line by line: a line is looked at only once it is complete (its LF has
 * arrived), and r->off remembers where the first unchecked line starts, so
 * a slow client that sends its head a byte at a time costs one memchr()
 * per arrival over the unchecked tail, never a re-parse. Nothing is copied:
 * the result points into the caller's buffer (path_off, path_len).
 *
 * Why strict: the only clients are scrapers and curl, which send textbook
 * requests, and every leniency an HTTP parser grants (bare LF, obs-fold,
 * space before the colon, duplicate Host, Content-Length lists) is one that
 * request-smuggling and cache-poisoning attacks are built from. A refusal
 * costs the sender its connection and nobody else anything.
 *
 * Split invariance: a line is judged only when complete, and the size
 * bound is the same test whether the LF is in this buffer or not yet
 * ("the head has reached SMQ_HTTP_HEAD_MAX bytes without ending"), so any
 * split of the same bytes gives the same result; tests/unit/test_http.c
 * checks it at every split point.
 */
#include "net/http.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { ST_REQUEST_LINE, ST_FIELDS };

#define CL_MAX (1ull << 62)

void smq_http_req_init(struct smq_http_req *r)
{
	memset(r, 0, sizeof(*r));
}

/* RFC 9110 5.6.2: tchar. */
static bool is_tchar(uint8_t c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

static bool is_ows(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9110 5.5: field-vchar, SP, HTAB (obs-text allowed, as the RFC does). */
static bool is_field_char(uint8_t c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* @p[0..n) equals the lower-case @word, ASCII case-insensitively. */
static bool ieq(const uint8_t *p, size_t n, const char *word)
{
	if (n != strlen(word))
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(p[i]) != (uint8_t)word[i])
			return false;
	return true;
}

static bool has_prefix_i(const uint8_t *p, size_t n, const char *word)
{
	return n >= strlen(word) && ieq(p, strlen(word), word);
}

/* The request-target at @p[t..e): where the path is. */
static int target(struct smq_http_req *r, const uint8_t *p, size_t t, size_t e)
{
	size_t path = t, q;

	if (memchr(p + t, '#', e - t))
		return -EINVAL;		/* a fragment is never sent (9110 7.1) */
	if (e - t == 1 && p[t] == '*') {
		r->path_off = (uint32_t)t;
		r->path_len = 1;
		return 0;
	}
	if (p[t] != '/') {
		size_t skip = has_prefix_i(p + t, e - t, "http://")	  ? 7
			      : has_prefix_i(p + t, e - t, "https://") ? 8
								   : 0;
		const uint8_t *slash;

		if (!skip)
			return -EINVAL;
		slash = memchr(p + t + skip, '/', e - t - skip);
		/* absolute-form: an authority, then the path (required here) */
		if (!slash || slash == p + t + skip)
			return -EINVAL;
		path = (size_t)(slash - p);
	}
	for (q = path; q < e && p[q] != '?'; q++)
		;
	r->path_off = (uint32_t)path;
	r->path_len = (uint32_t)(q - path);
	return 0;
}

/* "HTTP/1.1" or "HTTP/1.0"; another HTTP/D.D is a version we do not speak. */
static int version(struct smq_http_req *r, const uint8_t *p, size_t n)
{
	if (n != 8 || memcmp(p, "HTTP/", 5) || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
	    p[7] < '0' || p[7] > '9')
		return -EINVAL;
	if (p[5] != '1' || p[7] > '1')
		return -EPROTONOSUPPORT;
	r->minor = (uint8_t)(p[7] - '0');
	return 0;
}

/* METHOD SP TARGET SP VERSION, at @p[s..e) (no CRLF). */
static int request_line(struct smq_http_req *r, const uint8_t *p, size_t s, size_t e)
{
	size_t i = s, t;
	int ret;

	while (i < e && is_tchar(p[i]))
		i++;
	if (i == s || i >= e || p[i] != ' ')
		return -EINVAL;
	/* methods are case-sensitive (9110 9.1): "get" is some other method */
	if (i - s == 3 && !memcmp(p + s, "GET", 3))
		r->method = SMQ_HTTP_GET;
	else if (i - s == 4 && !memcmp(p + s, "HEAD", 4))
		r->method = SMQ_HTTP_HEAD;
	else
		r->method = SMQ_HTTP_OTHER;
	t = ++i;
	while (i < e && p[i] > 0x20 && p[i] < 0x7f)
		i++;
	if (i == t || i >= e || p[i] != ' ')
		return -EINVAL;
	ret = target(r, p, t, i);
	if (ret)
		return ret;
	i++;
	return version(r, p + i, e - i);
}

/* 1*DIGIT, at most CL_MAX. */
static int content_length(struct smq_http_req *r, const uint8_t *v, size_t n)
{
	uint64_t x = 0;

	if (!n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
		x = x * 10 + (uint64_t)(v[i] - '0');
		if (x > CL_MAX)
			return -EINVAL;
	}
	if (r->cl_seen && x != r->content_length)
		return -EINVAL;
	r->cl_seen = true;
	r->content_length = x;
	return 0;
}

/* #token (9110 5.6.1): empty elements allowed, each other one a token. */
static int connection(struct smq_http_req *r, const uint8_t *v, size_t n)
{
	size_t i = 0;

	while (i <= n) {
		size_t a = i, b;

		while (i < n && v[i] != ',')
			i++;
		b = i++;
		while (a < b && is_ows(v[a]))
			a++;
		while (b > a && is_ows(v[b - 1]))
			b--;
		for (size_t k = a; k < b; k++)
			if (!is_tchar(v[k]))
				return -EINVAL;
		if (ieq(v + a, b - a, "close"))
			r->conn_close = true;
		else if (ieq(v + a, b - a, "keep-alive"))
			r->conn_keep = true;
	}
	return 0;
}

static int field(struct smq_http_req *r, const uint8_t *name, size_t nlen, const uint8_t *v,
		 size_t vlen)
{
	if (ieq(name, nlen, "host"))
		return ++r->hosts > 1 ? -EINVAL : 0;
	if (ieq(name, nlen, "content-length"))
		return content_length(r, v, vlen);
	if (ieq(name, nlen, "transfer-encoding")) {
		r->te = true;
		return 0;
	}
	if (ieq(name, nlen, "connection"))
		return connection(r, v, vlen);
	return 0;
}

/* NAME ":" OWS VALUE OWS at @p[s..e). */
static int field_line(struct smq_http_req *r, const uint8_t *p, size_t s, size_t e)
{
	size_t i = s, v, ve;

	if (++r->fields > SMQ_HTTP_FIELDS_MAX)
		return -E2BIG;
	while (i < e && is_tchar(p[i]))
		i++;
	/* also refuses obs-fold and whitespace before the colon (9112 5.1, 5.2) */
	if (i == s || i >= e || p[i] != ':')
		return -EINVAL;
	for (v = i + 1; v < e && is_ows(p[v]); v++)
		;
	for (ve = e; ve > v && is_ows(p[ve - 1]); ve--)
		;
	for (size_t k = v; k < ve; k++)
		if (!is_field_char(p[k]))
			return -EINVAL;
	return field(r, p + s, i - s, p + v, ve - v);
}

/* The blank line: what the whole head says. 1: done. */
static int finish(struct smq_http_req *r)
{
	if (r->minor == 1 && !r->hosts)
		return -EINVAL;
	if (r->te && (r->cl_seen || r->minor == 0))
		return -EINVAL;
	r->keep_alive = r->minor == 1 ? !r->conn_close : r->conn_keep && !r->conn_close;
	r->body = r->te || r->content_length > 0;
	return 1;
}

/* One complete line @p[s..e), CRLF removed. 0: go on; 1: the head ended. */
static int line(struct smq_http_req *r, const uint8_t *p, size_t s, size_t e)
{
	if (r->state == ST_REQUEST_LINE) {
		int ret;

		if (s == e)
			return 0;	/* an empty line before the request (9112 2.2) */
		ret = request_line(r, p, s, e);
		r->state = ST_FIELDS;
		return ret;
	}
	return s == e ? finish(r) : field_line(r, p, s, e);
}

int smq_http_parse(struct smq_http_req *r, const uint8_t *buf, size_t len)
{
	for (;;) {
		size_t s = r->off, e;
		const uint8_t *nl = s < len ? memchr(buf + s, '\n', len - s) : NULL;
		int ret;

		if (!nl)
			return len >= SMQ_HTTP_HEAD_MAX ? -E2BIG : 0;
		e = (size_t)(nl - buf);
		if (e >= SMQ_HTTP_HEAD_MAX)
			return -E2BIG;
		if (e == s || buf[e - 1] != '\r')
			return -EINVAL;		/* a bare LF */
		if (memchr(buf + s, '\r', e - 1 - s))
			return -EINVAL;		/* a bare CR */
		ret = line(r, buf, s, e - 1);
		r->off = (uint32_t)(e + 1);
		if (ret < 0)
			return ret;
		if (ret > 0)
			return (int)r->off;
	}
}

int smq_http_error_status(int err)
{
	switch (err) {
	case -E2BIG:
		return 431;
	case -EPROTONOSUPPORT:
		return 505;
	default:
		return 400;
	}
}

const char *smq_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

int smq_http_response_head(char *out, size_t cap, int status, const char *ctype,
			   size_t body_len, const char *connection)
{
	int n = snprintf(out, cap, "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: %zu\r\n%s%s%s%s\r\n",
			 status, smq_http_reason(status), ctype ? "Content-Type: " : "",
			 ctype ? ctype : "", ctype ? "\r\n" : "", body_len,
			 connection ? "Connection: " : "", connection ? connection : "",
			 connection ? "\r\n" : "", status == 405 ? "Allow: GET, HEAD\r\n" : "");

	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}
