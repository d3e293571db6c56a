/* http.h - a strict, bounded, sans-I/O HTTP/1.1 request-head parser, and the
 * response head that goes with it. Enough HTTP for a metrics endpoint: GET
 * and HEAD without bodies, keep-alive, pipelining. No threads, no I/O, no
 * allocation; every function is safe from any thread on its own arguments.
 *
 * The caller owns one buffer per connection holding the bytes received and
 * not yet consumed, the start of the request head first. It calls
 * smq_http_parse() after every arrival with the whole buffer (the same bytes
 * as before plus the new ones): the parser remembers how far it checked, so
 * a head split into n pieces costs O(head) in total, not O(n * head). Once a
 * head is complete the caller answers, drops the head's bytes from its
 * buffer, and smq_http_req_init()s the request for the next one.
 *
 * The rules (RFC 9112 unless said otherwise), each a 400 unless said:
 *   - lines end in CRLF; a bare LF or CR, or any control byte (NUL, DEL,
 *     ...) other than HTAB inside a field value, is refused
 *   - empty lines before the request line are skipped (9112 2.2)
 *   - request line: METHOD SP TARGET SP HTTP/1.x, single spaces; METHOD a
 *     token; TARGET origin-form ("/path?query"), absolute-form
 *     ("http://host/path") or "*", visible ASCII without '#'
 *   - HTTP/1.0 and HTTP/1.1 only; another well-formed version is a 505
 *   - header: NAME ":" OWS VALUE OWS; NAME a token, no space before the
 *     colon (9112 5.1); a line starting with SP or HTAB (obs-fold) refused
 *   - HTTP/1.1 needs exactly one Host; HTTP/1.0 at most one (9112 3.2)
 *   - Content-Length: digits only, one value (repeats must agree), at most
 *     2^62; Transfer-Encoding with Content-Length, or in HTTP/1.0, refused
 *     (request smuggling, 9112 6.1 and 6.3)
 *   - Connection: "close" ends the connection after the response;
 *     HTTP/1.0 keeps it only with "keep-alive"
 *   - the head is at most SMQ_HTTP_HEAD_MAX bytes and SMQ_HTTP_FIELDS_MAX
 *     header lines: a 431 past either
 * A request with a body (Content-Length > 0 or Transfer-Encoding) is
 * parsed, but its body is not read: the caller answers and closes.
 */
#ifndef SMQ_NET_HTTP_H
#define SMQ_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMQ_HTTP_HEAD_MAX 8192u		/* request line + headers + CRLF CRLF */
#define SMQ_HTTP_FIELDS_MAX 100u	/* header lines in one head */

enum smq_http_method {
	SMQ_HTTP_GET = 1,
	SMQ_HTTP_HEAD,
	SMQ_HTTP_OTHER,			/* any other token: the caller answers 405 */
};

/* One request head: the result fields are valid once smq_http_parse()
 * returned > 0; the rest is the parser's progress. */
struct smq_http_req {
	/* result */
	uint8_t method;			/* enum smq_http_method */
	uint8_t minor;			/* HTTP/1.minor: 0 or 1 */
	bool keep_alive;		/* another request may follow on the connection */
	bool body;			/* a body follows (unread): answer, then close */
	uint32_t path_off, path_len;	/* the path in the caller's buffer, without
					 * "?query"; "*" for the asterisk-form */
	uint64_t content_length;
	/* private: how far the buffer was checked */
	uint32_t off;			/* bytes of complete lines checked */
	uint8_t state;
	uint8_t hosts;
	uint16_t fields;
	bool conn_close, conn_keep, te, cl_seen;
};

/* Ready @r to parse a new head. Cannot fail. */
void smq_http_req_init(struct smq_http_req *r);

/* Parse the head at the start of @buf (@len bytes: everything received so
 * far; bytes past the head, a pipelined next request, are left alone).
 * Returns the head's length (> 0, the final CRLF included) once it is
 * complete and valid; 0 when more bytes are needed; or
 *   -EINVAL          malformed (answer 400)
 *   -E2BIG           the head passed SMQ_HTTP_HEAD_MAX bytes or
 *                    SMQ_HTTP_FIELDS_MAX fields (431)
 *   -EPROTONOSUPPORT a version other than HTTP/1.0 and 1.1 (505)
 * The same bytes give the same result however they were split across
 * calls. After a result other than 0, call smq_http_req_init() before
 * parsing again. */
int smq_http_parse(struct smq_http_req *r, const uint8_t *buf, size_t len);

/* The status code to answer a negative smq_http_parse() result with. */
int smq_http_error_status(int err);

/* "OK", "Not Found", ...; "Unknown" for a code this file does not use. */
const char *smq_http_reason(int status);

/* Write an HTTP/1.1 response head into @out (@cap bytes): the status line,
 * Content-Type (@ctype; NULL: none), Content-Length @body_len, "Connection:
 * @connection" (NULL: none; "close", or "keep-alive" for an HTTP/1.0 client
 * that asked for it), "Allow: GET, HEAD" on a 405, and the blank line.
 * Returns its length, or -ENOSPC when it does not fit (@out then holds a
 * truncated, terminated string). */
int smq_http_response_head(char *out, size_t cap, int status, const char *ctype,
			   size_t body_len, const char *connection);

#endif
