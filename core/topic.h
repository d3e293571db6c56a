/* topic.h - MQTT topic names and topic filters: validation, shared-subscription
 * parsing and the reference matcher.
 *
 * All functions take views (struct smq_str) and never allocate, never keep a
 * pointer to their arguments, and are safe from any thread. Matching is
 * byte-exact: no case folding, no Unicode normalisation.
 *
 * UTF-8 well-formedness is the codec's job (it checks every wire string);
 * these functions only add the topic-specific rules.
 */
#ifndef SMQ_TOPIC_H
#define SMQ_TOPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/codec.h"

/* Longest topic name or filter the protocol can carry (u16 length prefix). */
#define SMQ_TOPIC_MAX 65535u

/* A topic name as sent in PUBLISH (or a will topic): 1..65535 bytes
 * [MQTT-4.7.3-1], no '+' or '#' [MQTT-4.7.3-2] [MQTT-3.3.2-2], no U+0000
 * [MQTT-4.7.3-2]. Empty levels are allowed ("a//b", "/"). */
bool smq_topic_name_valid(struct smq_str topic);

/* A topic filter as sent in SUBSCRIBE / UNSUBSCRIBE: 1..65535 bytes, no
 * U+0000; '#' only as the whole last level [MQTT-4.7.1-2]; '+' only as a
 * whole level [MQTT-4.7.1-3]. Empty levels are allowed. A shared filter
 * ("$share/g/f") passes if it is a valid filter as a whole; use
 * smq_topic_parse_shared() for the stricter shared rules. */
bool smq_topic_filter_valid(struct smq_str filter);

/* True if @filter contains a '+' or '#' level (assumes a valid filter). */
bool smq_topic_is_wild(struct smq_str filter);

/* Split a shared subscription filter "$share/{group}/{inner}" (5.0, 4.8.2).
 * Returns 1 if @filter does not start with "$share/" (a normal filter;
 * *group and *inner untouched), 0 with *group and *inner set to views into
 * @filter when it is a well-formed shared filter, or -EINVAL when it starts
 * with "$share/" but the group is empty or contains '/', '+' or '#'
 * [MQTT-4.8.2-1] [MQTT-4.8.2-2], or the inner filter is missing or invalid.
 * "$share" without the slash is an ordinary filter. */
int smq_topic_parse_shared(struct smq_str filter, struct smq_str *group,
			   struct smq_str *inner);

/* Does topic name @topic match topic filter @filter? Spec semantics
 * (4.7): '+' matches exactly one level, possibly empty; '#' matches the
 * parent level and any number of child levels ("sport/#" matches "sport");
 * a topic whose first character is '$' is not matched by a filter whose
 * first level is '+' or '#' [MQTT-4.7.2-1]. Both arguments are assumed
 * valid (checked with the predicates above); for any other bytes the result
 * is defined (no crash) but meaningless. A shared filter is NOT unwrapped:
 * pass the inner filter. This is the simple reference matcher: O(len),
 * no state. */
bool smq_topic_match(struct smq_str filter, struct smq_str topic);

#endif
