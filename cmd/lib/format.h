/* format.h - mosquitto_sub's -F output format, for shardmq-sub and -rr.
 *
 * A format is free text with three kinds of sequences, as mosquitto_sub(1)
 * documents them:
 *   %X  a part of the message: %t topic, %p payload, %q QoS, %r retain,
 *       %l payload length, %m packet id, %x / %X payload in hex, the 5.0
 *       properties %A topic alias, %C content type, %D correlation data,
 *       %E message expiry, %F payload format, %P user properties
 *       ("key:value" separated by spaces), %R response topic, %S
 *       subscription id; helpers %I (ISO-8601 time), %U (Unix time with
 *       nanoseconds), %j / %J (JSON with the payload quoted / as JSON);
 *       %% a percent sign. Between % and the letter: a flag '-' (left
 *       align) or '0' (zero padding, numeric parts, hex and %p), a minimum
 *       width, and '.' with a maximum width (%C %I %R %t). As in
 *       mosquitto_sub 2.0, a width also cuts %p to that many bytes and %x /
 *       %X to half as many.
 *   @X  strftime(3)'s %X for the time the message arrived; @N its
 *       nanoseconds, @@ an at sign.
 *   \X  \\ \0 \a \e \n \r \t \v.
 * One message is printed per call; no newline is added here.
 *
 * Threads: none. Nothing is kept between calls.
 */
#ifndef SMQ_FORMAT_H
#define SMQ_FORMAT_H

#include <stdbool.h>
#include <stdio.h>

#include "core/client.h"

/* Check @fmt once, before connecting: 0, or the usage exit status after
 * saying what is wrong (smq_tool_bad()). */
int smq_tool_format_check(const char *fmt);

/* Print @ev (a MESSAGE event) to @out as @fmt (checked) says. @pretty
 * prints %j and %J JSON indented, as mosquitto_sub --pretty. A %J whose
 * payload is not JSON prints "Error: Message payload is not valid JSON on
 * topic T." on stderr instead of that part. */
void smq_tool_format_print(FILE *out, const char *fmt, const struct smq_client_event *ev,
			   bool pretty);

/* Print @ev as -v does ("topic payload") or just the payload. */
void smq_tool_format_plain(FILE *out, const struct smq_client_event *ev, bool verbose);

#endif
