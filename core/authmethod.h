/* authmethod.h - MQTT 5.0 enhanced authentication methods (section 4.12).
 *
 * A client names a method in CONNECT's Authentication Method property; the
 * engine looks it up here. An unknown method gets CONNACK 0x8C and the
 * connection closes [MQTT-4.12.0-1]. A known one runs a challenge/response
 * exchange: start() with CONNECT's Authentication Data, then step() for
 * every AUTH (0x18 Continue authentication) the client answers with, until
 * the method says SUCCESS (CONNACK 0x00, with the method and its last
 * reply) or FAIL (CONNACK 0x87). A live client may re-authenticate (AUTH
 * 0x19) with the same method when the method allows it; that runs the same
 * start()/step() sequence and ends in AUTH 0x00 or DISCONNECT 0x87.
 *
 * The table is process-wide and starts empty: no method ships enabled, so
 * every Authentication Method is refused with 0x8C until the program (or a
 * test) registers one. Register before the shards start: lookups from the
 * shard threads read the table without a lock.
 */
#ifndef SMQ_AUTHMETHOD_H
#define SMQ_AUTHMETHOD_H

#include <stdbool.h>

#include "core/codec.h"

/* What a method decided after a start() or step(). */
enum smq_authm_verdict {
	SMQ_AUTHM_CONTINUE = 0,	/* send *reply in AUTH 0x18, wait for the client's AUTH */
	SMQ_AUTHM_SUCCESS,	/* authenticated: *reply goes in CONNACK (re-auth: AUTH 0x00) */
	SMQ_AUTHM_FAIL,		/* refused: CONNACK 0x87 (re-auth: DISCONNECT 0x87) */
};

/* Who is authenticating; views valid only during the call. */
struct smq_authm_who {
	struct smq_str client_id;	/* as sent ("" when the broker assigns one) */
	struct smq_str user;		/* CONNECT's User Name, if has_user */
	bool has_user;
	bool reauth;			/* AUTH 0x19 from a connected client */
};

/* One method. Every call happens on one shard thread for a given @state.
 * *reply is left empty (no Authentication Data is sent) or set to bytes
 * the method owns, valid until the next call with the same state or its
 * free(). A method that keeps no state leaves *state NULL. */
struct smq_authmethod {
	const char *name;	/* the Authentication Method, e.g. "SCRAM-SHA-256" */
	bool reauth;		/* supports re-authentication (AUTH 0x19) */
	/* First message: the Authentication Data of CONNECT or of AUTH 0x19
	 * (empty when absent). *state is NULL on entry. */
	enum smq_authm_verdict (*start)(void **state, const struct smq_authm_who *who,
					struct smq_str data, struct smq_str *reply);
	/* The Authentication Data of the client's next AUTH 0x18. */
	enum smq_authm_verdict (*step)(void *state, struct smq_str data, struct smq_str *reply);
	/* Release @state (may be NULL). NULL if the method keeps none. */
	void (*free)(void *state);
};

/* At most this many methods are registered at once. */
#define SMQ_AUTHMETHOD_MAX 8

/* Enable @m (borrowed: it must outlive every engine that may use it).
 * 0, -EINVAL (no name or start/step), -EEXIST (name taken), -ENOSPC. Not
 * thread-safe: call before the shards start. */
int smq_authmethod_register(const struct smq_authmethod *m);

/* Disable the method called @name. 0 or -ENOENT. Connections still in an
 * exchange with it keep their pointer, so @m must stay alive until they end. */
int smq_authmethod_unregister(const char *name);

/* The method called exactly @name (compared bytewise), or NULL. */
const struct smq_authmethod *smq_authmethod_find(struct smq_str name);

#endif
