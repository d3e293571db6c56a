/* acl.h - mosquitto-compatible ACL files: parse once, check many times.
 *
 * File format (mosquitto.conf(5), "acl_file"), one rule a line:
 *
 *	# comment                       '#' as first non-blank; blank lines skipped
 *	topic [ACCESS] FILTER           before the first "user" line: clients
 *	                                without a user name (the anonymous section)
 *	user NAME                       starts NAME's section (the rest of the line,
 *	                                trimmed; may contain spaces; repeatable)
 *	topic [ACCESS] FILTER           in NAME's section
 *	pattern [ACCESS] FILTER         every client, wherever the line stands
 *
 * ACCESS is read, write, readwrite or deny; without it the rule is readwrite.
 * The access word is present exactly when the line has two words or more
 * after the keyword, so a FILTER containing spaces needs one ("topic read a b"
 * is the filter "a b"). FILTER is an MQTT topic filter ('+', '#'). In pattern
 * lines "%u" stands for the user name and "%c" for the client id, anywhere in
 * a level and any number of times, as mosquitto 2.0 substitutes them
 * ("pattern read dev/%u-%c/#"); elsewhere they are plain text.
 *
 * Semantics (mosquitto 2.0's default check, deny first):
 *  - the rules that apply to a client are its user section (or the anonymous
 *    section when it has no user name) plus all patterns; a pattern using %u
 *    never applies to a client without user name;
 *  - if an applying deny rule matches the topic, access is refused;
 *  - else access is granted if an applying rule with the access (read for
 *    delivery, write for publish) matches the topic; else refused.
 *  - matching is MQTT's: '+' one level, '#' the rest including the parent
 *    level, and a leading wildcard never matches a '$' topic.
 *  - substitution is refused (the pattern does not match) when the value is
 *    empty or contains '/', '+' or '#', so that a chosen id cannot widen what
 *    a pattern grants. A *deny* pattern whose value is refused fails closed:
 *    that client is refused everything (a deny that silently stopped applying
 *    would widen access).
 *
 * Concurrency: a struct smq_acl is immutable once returned; any number of
 * threads may check against it without locks. Reload = parse a new one, swap
 * the pointer, free the old one when no thread uses it (the caller's job).
 * Checks never allocate and never build strings.
 */
#ifndef SMQ_ACL_H
#define SMQ_ACL_H

#include <stdbool.h>
#include <stddef.h>

/* Longest rule filter, in levels; deeper filters are a parse error (checks
 * recurse once per rule level). mosquitto allows 200 levels per topic. */
#define SMQ_ACL_MAX_LEVELS 1024u

struct smq_acl;		/* compiled rules; immutable */
struct smq_acl_user;	/* one client's rule section inside an smq_acl */

/* Who is asking. Views, not copied; valid for the duration of each call.
 * @client_id is the effective id (the assigned one for an empty CONNECT
 * id). A user name may be present and empty (@has_user, @user_len == 0). */
struct smq_acl_who {
	const char *user;
	size_t user_len;
	bool has_user;
	const char *client_id;
	size_t id_len;
};

/* Parse the ACL file at @path. On 0, *out is a new ACL owned by the caller
 * (smq_acl_free()). On error returns -errno (-EINVAL for a bad line,
 * -ENOMEM, or the open/read error) with a message in @err: "PATH:LINE: what
 * is wrong" or "PATH: strerror". *out is untouched on error. */
int smq_acl_load(const char *path, struct smq_acl **out, char *err, size_t errlen);

/* Same, from @len bytes of @text (need not be NUL-terminated); @name stands
 * for the file name in messages. */
int smq_acl_parse(const char *text, size_t len, const char *name, struct smq_acl **out,
		  char *err, size_t errlen);

/* NULL is ignored. No check may be running on @acl or use its handles. */
void smq_acl_free(struct smq_acl *acl);

/* Number of topic and pattern lines. */
size_t smq_acl_rule_count(const struct smq_acl *acl);

/* The rule section for @who: its user's section, an empty section for a
 * user without one, or the anonymous section without user name. One hash
 * lookup; resolve once (at CONNECT) and keep it: the handle is valid as long
 * as @acl. Never NULL. */
const struct smq_acl_user *smq_acl_user(const struct smq_acl *acl, const struct smq_acl_who *who);

/* May @who publish to topic name @topic (@len bytes, a valid topic)? @u is
 * smq_acl_user(acl, who). A lookup per topic level, no allocation. */
bool smq_acl_can_publish(const struct smq_acl *acl, const struct smq_acl_user *u,
			 const struct smq_acl_who *who, const char *topic, size_t len);

/* May a message on @topic be delivered to @who? (read access) */
bool smq_acl_can_read(const struct smq_acl *acl, const struct smq_acl_user *u,
		      const struct smq_acl_who *who, const char *topic, size_t len);

/* The SUBSCRIBE decision for topic filter @filter (a shared subscription's
 * inner filter, not "$share/..."):
 *  DENY: no read-granting rule intersects @filter (no topic it matches could
 *	ever be delivered), or one deny rule covers it (every topic it matches is
 *	denied), or @filter is not a valid filter. Answer with SUBACK 0x87.
 *  ALL_READABLE: one read rule covers @filter and no deny rule intersects it:
 *	every message it matches may be delivered without smq_acl_can_read().
 *  CHECK_EACH: otherwise; accept, and check each delivery.
 * "Covers" and "intersects" are judged one rule at a time, so a filter that
 * only several rules together cover gets CHECK_EACH (deliveries are then
 * checked and refused or granted one by one: never wrong, only slower).
 * A lone empty level counts as a topic here ("+" and "/#" intersect).
 * Costs a walk of the rules the filter's wildcards reach: meant for
 * SUBSCRIBE, not for every message. */
enum smq_acl_sub {
	SMQ_ACL_SUB_DENY,
	SMQ_ACL_SUB_CHECK_EACH,
	SMQ_ACL_SUB_ALL_READABLE,
};

enum smq_acl_sub smq_acl_subscribe(const struct smq_acl *acl, const struct smq_acl_user *u,
				   const struct smq_acl_who *who, const char *filter, size_t len);

#endif
