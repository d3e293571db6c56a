/* access.c - the engine's questions to the ACL: may this session publish
 * here, read this message, subscribe to this filter?
 *
 * Each session caches its ACL section handle (smq_acl_user(): one hash
 * lookup) together with the generation of the auth bundle it came from; a
 * reload bumps the generation, so the next check resolves again instead of
 * following a handle into a freed ACL. No check formats a string: patterns
 * compare %u / %c pieces against the stored user name and client id.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/acl.h"
#include "core/auth.h"
#include "core/engine_int.h"
#include "core/session.h"

static struct smq_acl_who who_of(const struct smq_session *s)
{
	return (struct smq_acl_who){
		.user = s->user,
		.user_len = s->user_len,
		.has_user = s->user != NULL,
		.client_id = s->client_id,
		.id_len = s->id_len,
	};
}

static const struct smq_acl_user *section(const struct smq_engine *e, struct smq_session *s,
					  const struct smq_acl_who *who)
{
	if (s->acl_gen != e->auth->gen || !s->acl_u) {
		s->acl_u = smq_acl_user(e->auth->acl, who);
		s->acl_gen = e->auth->gen;
	}
	return s->acl_u;
}

bool smq_eng_may_publish(const struct smq_engine *e, struct smq_session *s, struct smq_str topic)
{
	struct smq_acl_who who;

	if (!e->auth || !e->auth->acl)
		return true;
	who = who_of(s);
	return smq_acl_can_publish(e->auth->acl, section(e, s, &who), &who,
				   (const char *)topic.p, topic.len);
}

bool smq_eng_may_read(const struct smq_engine *e, struct smq_session *s, struct smq_str topic)
{
	struct smq_acl_who who;

	if (!e->auth || !e->auth->acl)
		return true;
	who = who_of(s);
	return smq_acl_can_read(e->auth->acl, section(e, s, &who), &who, (const char *)topic.p,
				topic.len);
}

bool smq_eng_may_subscribe(const struct smq_engine *e, struct smq_session *s,
			   struct smq_str filter)
{
	struct smq_acl_who who;

	if (!e->auth || !e->auth->acl)
		return true;
	who = who_of(s);
	return smq_acl_subscribe(e->auth->acl, section(e, s, &who), &who,
				 (const char *)filter.p, filter.len) != SMQ_ACL_SUB_DENY;
}

int smq_eng_set_user(struct smq_session *s, struct smq_str user, bool has_user)
{
	char *u = NULL;

	if (has_user) {
		u = malloc(user.len + 1u);
		if (!u)
			return -ENOMEM;
		memcpy(u, user.p, user.len);
		u[user.len] = '\0';
	}
	free(s->user);
	s->user = u;
	s->user_len = has_user ? (uint16_t)user.len : 0;
	s->acl_u = NULL;	/* the section depends on the user */
	return 0;
}
