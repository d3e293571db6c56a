/* test_http.c - the HTTP/1.1 request-head parser (net/http.h), table-driven:
 * every rule with a request that keeps it and one that breaks it, each fed
 * whole, split in two at every byte, and a byte at a time (the result must
 * not depend on how the bytes arrived); the size bounds at their edges;
 * pipelined heads; the response head. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"

#define OK 0	/* want: a complete head */

/* Inline arrays: Criterion copies parameters into the test process. */
struct pcase {
	char name[40];
	char text[128];		/* the head, as sent */
	int want;		/* OK, or the negative smq_http_parse() result */
	int method;		/* with OK: what the request says */
	char path[16];
	int minor;
	bool keep_alive, body;
};

#define H11 " HTTP/1.1\r\nHost: x\r\n"


ParameterizedTestParameters(net_http, rules)
{
	static struct pcase cases[] = {
		/* good requests */
		{ "get", "GET /metrics" H11 "\r\n", OK, SMQ_HTTP_GET, "/metrics", 1, true, false },
		{ "head", "HEAD /" H11 "\r\n", OK, SMQ_HTTP_HEAD, "/", 1, true, false },
		{ "other_method_with_body", "POST /metrics" H11 "Content-Length: 5\r\n\r\n", OK,
		  SMQ_HTTP_OTHER, "/metrics", 1, true, true },
		{ "methods_are_case_sensitive", "get /" H11 "\r\n", OK, SMQ_HTTP_OTHER, "/", 1, true,
		  false },
		{ "query_is_not_path", "GET /metrics?name[]=x" H11 "\r\n", OK, SMQ_HTTP_GET, "/metrics",
		  1, true, false },
		{ "absolute_form", "GET http://h:9/metrics HTTP/1.1\r\nHost: h:9\r\n\r\n", OK,
		  SMQ_HTTP_GET, "/metrics", 1, true, false },
		{ "absolute_form_https_any_case", "GET HTTPS://h/ HTTP/1.1\r\nHost: h\r\n\r\n", OK,
		  SMQ_HTTP_GET, "/", 1, true, false },
		{ "asterisk_form", "OPTIONS *" H11 "\r\n", OK, SMQ_HTTP_OTHER, "*", 1, true, false },
		{ "empty_lines_before_request", "\r\n\r\nGET /" H11 "\r\n", OK, SMQ_HTTP_GET, "/", 1,
		  true, false },
		{ "http10_needs_no_host_and_closes", "GET / HTTP/1.0\r\n\r\n", OK, SMQ_HTTP_GET, "/", 0,
		  false, false },
		{ "http10_keep_alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", OK,
		  SMQ_HTTP_GET, "/", 0, true, false },
		{ "connection_close", "GET /" H11 "Connection: close\r\n\r\n", OK, SMQ_HTTP_GET, "/", 1,
		  false, false },
		{ "connection_list_any_case", "GET /" H11 "Connection: keep-alive, ,CLOSE\r\n\r\n", OK,
		  SMQ_HTTP_GET, "/", 1, false, false },
		{ "connection_other_tokens", "GET /" H11 "Connection: Upgrade\r\n\r\n", OK,
		  SMQ_HTTP_GET, "/", 1, true, false },
		{ "ows_around_value", "GET / HTTP/1.1\r\nHost: \t x \t\r\n\r\n", OK, SMQ_HTTP_GET, "/",
		  1, true, false },
		{ "empty_value", "GET /" H11 "X-Empty:\r\n\r\n", OK, SMQ_HTTP_GET, "/", 1, true, false },
		{ "obs_text_in_value", "GET /" H11 "X-Latin: caf\xe9\r\n\r\n", OK, SMQ_HTTP_GET, "/", 1,
		  true, false },
		{ "header_names_any_case", "GET / HTTP/1.1\r\nhOsT: x\r\ncontent-LENGTH: 0\r\n\r\n", OK,
		  SMQ_HTTP_GET, "/", 1, true, false },
		{ "content_length_repeated_same", "GET /" H11 "Content-Length: 3\r\nContent-Length: 3\r\n"
		  "\r\n", OK, SMQ_HTTP_GET, "/", 1, true, true },
		{ "transfer_encoding_is_a_body", "GET /" H11 "Transfer-Encoding: chunked\r\n\r\n", OK,
		  SMQ_HTTP_GET, "/", 1, true, true },

		/* 400 */
		{ "bare_lf", "GET / HTTP/1.1\nHost: x\n\n", -EINVAL, 0, "", 0, false, false },
		{ "bare_lf_at_end", "GET /" H11 "\n", -EINVAL, 0, "", 0, false, false },
		{ "bare_cr", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "two_spaces", "GET  /" H11 "\r\n", -EINVAL, 0, "", 0, false, false },
		{ "tab_separator", "GET\t/" H11 "\r\n", -EINVAL, 0, "", 0, false, false },
		{ "no_method", " /" H11 "\r\n", -EINVAL, 0, "", 0, false, false },
		{ "no_version", "GET /\r\nHost: x\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "space_after_version", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "version_lower_case", "GET / http/1.1\r\nHost: x\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "version_malformed", "GET / HTTP/1.10\r\nHost: x\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "target_not_a_path", "GET metrics" H11 "\r\n", -EINVAL, 0, "", 0, false, false },
		{ "target_fragment", "GET /a#b" H11 "\r\n", -EINVAL, 0, "", 0, false, false },
		{ "target_control_byte", "GET /a\x01" H11 "\r\n", -EINVAL, 0, "", 0, false, false },
		{ "absolute_form_without_path", "GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "absolute_form_without_authority", "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",
		  -EINVAL, 0, "", 0, false, false },
		{ "space_before_colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "obs_fold", "GET /" H11 "X-A: b\r\n c\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "field_without_name", "GET /" H11 ": x\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "field_without_colon", "GET /" H11 "X-A\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "field_name_not_a_token", "GET /" H11 "X(A): b\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "nul_in_value", "GET /" H11 "X-A: a\0b\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "del_in_value", "GET /" H11 "X-A: a\x7f\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "http11_without_host", "GET / HTTP/1.1\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "two_hosts", "GET /" H11 "Host: y\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "two_hosts_http10", "GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "content_length_not_digits", "GET /" H11 "Content-Length: 1a\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "content_length_signed", "GET /" H11 "Content-Length: +1\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "content_length_empty", "GET /" H11 "Content-Length: \r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "content_length_list", "GET /" H11 "Content-Length: 5, 5\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "content_length_disagree", "GET /" H11 "Content-Length: 5\r\nContent-Length: 6\r\n"
		  "\r\n", -EINVAL, 0, "", 0, false, false },
		{ "content_length_huge", "GET /" H11 "Content-Length: 99999999999999999999\r\n\r\n",
		  -EINVAL, 0, "", 0, false, false },
		{ "te_and_content_length", "GET /" H11 "Transfer-Encoding: chunked\r\nContent-Length: 3"
		  "\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "te_in_http10", "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "connection_not_tokens", "GET /" H11 "Connection: keep alive\r\n\r\n", -EINVAL, 0, "", 0, false, false },
		{ "binary_junk", "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\r\n\r\n", -EINVAL, 0, "", 0, false, false },

		/* 505 */
		{ "http2", "GET / HTTP/2.0\r\n\r\n", -EPROTONOSUPPORT, 0, "", 0, false, false },
		{ "http12", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", -EPROTONOSUPPORT, 0, "", 0, false, false },
		{ "http09", "GET / HTTP/0.9\r\n\r\n", -EPROTONOSUPPORT, 0, "", 0, false, false },
	};

	return cr_make_param_array(struct pcase, cases, sizeof(cases) / sizeof(cases[0]));
}

/* The length of a case's text: NUL bytes inside are part of it. */
static size_t text_len(const struct pcase *c)
{
	if (!strcmp(c->name, "nul_in_value"))
		return strlen(c->text) + 1 + strlen(c->text + strlen(c->text) + 1);
	if (!strcmp(c->name, "binary_junk"))
		return 16;
	return strlen(c->text);
}

static void check_result(const struct pcase *c, const struct smq_http_req *r, int got,
			 size_t len, const char *how)
{
	if (c->want != OK) {
		cr_assert_eq(got, c->want, "%s (%s): got %d, want %d", c->name, how, got, c->want);
		return;
	}
	cr_assert_eq(got, (int)len, "%s (%s): got %d, want the head length %zu", c->name, how,
		     got, len);
	cr_assert_eq(r->method, c->method, "%s (%s): method", c->name, how);
	cr_assert_eq(r->path_len, strlen(c->path), "%s (%s): path length", c->name, how);
	cr_assert(!memcmp(c->text + r->path_off, c->path, r->path_len), "%s (%s): path",
		  c->name, how);
	cr_assert_eq(r->minor, c->minor, "%s (%s): minor", c->name, how);
	cr_assert_eq(r->keep_alive, c->keep_alive, "%s (%s): keep_alive", c->name, how);
	cr_assert_eq(r->body, c->body, "%s (%s): body", c->name, how);
}

ParameterizedTest(struct pcase *c, net_http, rules)
{
	const uint8_t *p = (const uint8_t *)c->text;
	size_t len = text_len(c);
	struct smq_http_req r;
	int got;

	/* whole */
	smq_http_req_init(&r);
	check_result(c, &r, smq_http_parse(&r, p, len), len, "whole");

	/* split in two at every byte: the first part alone is never a
	 * complete head, and may only be an error the whole also is */
	for (size_t k = 1; k < len; k++) {
		char how[32];

		snprintf(how, sizeof(how), "split at %zu", k);
		smq_http_req_init(&r);
		got = smq_http_parse(&r, p, k);
		cr_assert(got <= 0, "%s (%s): complete after %zu bytes", c->name, how, k);
		if (got == 0)
			got = smq_http_parse(&r, p, len);
		check_result(c, &r, got, len, how);
	}

	/* a byte at a time */
	smq_http_req_init(&r);
	got = 0;
	for (size_t k = 1; k <= len && got == 0; k++)
		got = smq_http_parse(&r, p, k);
	check_result(c, &r, got, len, "bytewise");
}

Test(net_http, incomplete_head_wants_more)
{
	static const char *const parts[] = { "", "G", "GET / HTTP/1.1", "GET / HTTP/1.1\r",
					     "GET / HTTP/1.1\r\nHost: x\r\n",
					     "GET / HTTP/1.1\r\nHost: x\r\n\r" };
	struct smq_http_req r;

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		smq_http_req_init(&r);
		cr_assert_eq(smq_http_parse(&r, (const uint8_t *)parts[i], strlen(parts[i])), 0,
			     "'%s'", parts[i]);
	}
}

/* A GET whose head is exactly @total bytes, padded with one header. */
static char *head_of(size_t total)
{
	static const char pre[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
	static const char post[] = "\r\n\r\n";
	char *b = malloc(total + 1);
	size_t pad = total - (sizeof(pre) - 1) - (sizeof(post) - 1);

	cr_assert(b);
	memcpy(b, pre, sizeof(pre) - 1);
	memset(b + sizeof(pre) - 1, 'a', pad);
	memcpy(b + sizeof(pre) - 1 + pad, post, sizeof(post));
	return b;
}

Test(net_http, head_of_exactly_the_bound_passes)
{
	char *b = head_of(SMQ_HTTP_HEAD_MAX);
	struct smq_http_req r;

	smq_http_req_init(&r);
	cr_assert_eq(smq_http_parse(&r, (const uint8_t *)b, SMQ_HTTP_HEAD_MAX),
		     (int)SMQ_HTTP_HEAD_MAX);
	free(b);
}

Test(net_http, head_one_byte_over_the_bound_is_431)
{
	char *b = head_of(SMQ_HTTP_HEAD_MAX + 1);
	struct smq_http_req r;
	int got = 0;

	smq_http_req_init(&r);
	cr_assert_eq(smq_http_parse(&r, (const uint8_t *)b, SMQ_HTTP_HEAD_MAX + 1), -E2BIG);
	/* bytewise: refused as soon as the bound is reached, not later */
	smq_http_req_init(&r);
	for (size_t k = 1; k <= SMQ_HTTP_HEAD_MAX && got == 0; k++)
		got = smq_http_parse(&r, (const uint8_t *)b, k);
	cr_assert_eq(got, -E2BIG);
	cr_assert_eq(smq_http_error_status(got), 431);
	free(b);
}

Test(net_http, endless_line_is_431_at_the_bound)
{
	char *b = malloc(SMQ_HTTP_HEAD_MAX);
	struct smq_http_req r;

	cr_assert(b);
	memset(b, 'a', SMQ_HTTP_HEAD_MAX);
	smq_http_req_init(&r);
	cr_assert_eq(smq_http_parse(&r, (const uint8_t *)b, SMQ_HTTP_HEAD_MAX - 1), 0);
	cr_assert_eq(smq_http_parse(&r, (const uint8_t *)b, SMQ_HTTP_HEAD_MAX), -E2BIG);
	free(b);
}

/* A GET with @n header lines (Host included). */
static size_t fields_head(char *b, size_t cap, unsigned n)
{
	size_t off = (size_t)snprintf(b, cap, "GET / HTTP/1.1\r\nHost: x\r\n");

	for (unsigned i = 1; i < n; i++)
		off += (size_t)snprintf(b + off, cap - off, "X-%u: v\r\n", i);
	off += (size_t)snprintf(b + off, cap - off, "\r\n");
	return off;
}

Test(net_http, field_count_bound)
{
	char b[4096];
	struct smq_http_req r;
	size_t n = fields_head(b, sizeof(b), SMQ_HTTP_FIELDS_MAX);

	smq_http_req_init(&r);
	cr_assert_eq(smq_http_parse(&r, (const uint8_t *)b, n), (int)n);
	n = fields_head(b, sizeof(b), SMQ_HTTP_FIELDS_MAX + 1);
	smq_http_req_init(&r);
	cr_assert_eq(smq_http_parse(&r, (const uint8_t *)b, n), -E2BIG);
}

Test(net_http, pipelined_heads_one_at_a_time)
{
	static const char two[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
				  "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /x";
	const uint8_t *p = (const uint8_t *)two;
	size_t len = sizeof(two) - 1;
	struct smq_http_req r;
	int first, second;

	smq_http_req_init(&r);
	first = smq_http_parse(&r, p, len);
	cr_assert_eq(first, (int)(strstr(two, "\r\n\r\n") - two) + 4);
	cr_assert_eq(r.method, SMQ_HTTP_GET);
	cr_assert(r.keep_alive);
	smq_http_req_init(&r);
	second = smq_http_parse(&r, p + first, len - (size_t)first);
	cr_assert_eq(second, (int)(strstr(two + first, "\r\n\r\n") - (two + first)) + 4);
	cr_assert_eq(r.method, SMQ_HTTP_HEAD);
	cr_assert_not(r.keep_alive);
	smq_http_req_init(&r);
	cr_assert_eq(smq_http_parse(&r, p + first + second, len - (size_t)(first + second)), 0);
}

Test(net_http, error_statuses)
{
	cr_assert_eq(smq_http_error_status(-EINVAL), 400);
	cr_assert_eq(smq_http_error_status(-E2BIG), 431);
	cr_assert_eq(smq_http_error_status(-EPROTONOSUPPORT), 505);
	cr_assert_str_eq(smq_http_reason(431), "Request Header Fields Too Large");
	cr_assert_str_eq(smq_http_reason(405), "Method Not Allowed");
	cr_assert_str_eq(smq_http_reason(299), "Unknown");
}

Test(net_http, response_head_200)
{
	char b[256];
	int n = smq_http_response_head(b, sizeof(b), 200, "text/plain", 1234, NULL);

	cr_assert_str_eq(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			    "Content-Length: 1234\r\n\r\n");
	cr_assert_eq(n, (int)strlen(b));
}

Test(net_http, response_head_405_says_allow_and_close)
{
	char b[256];

	cr_assert_gt(smq_http_response_head(b, sizeof(b), 405, NULL, 0, "close"), 0);
	cr_assert_str_eq(b, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n"
			    "Connection: close\r\nAllow: GET, HEAD\r\n\r\n");
}

Test(net_http, response_head_too_small)
{
	char b[16];

	cr_assert_eq(smq_http_response_head(b, sizeof(b), 200, "text/plain", 1, NULL), -ENOSPC);
	cr_assert_eq(strlen(b), sizeof(b) - 1);
}
