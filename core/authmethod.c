/* authmethod.c - the table of MQTT 5.0 enhanced authentication methods.
 *
 * A fixed array of borrowed pointers, searched linearly: it holds a handful
 * of entries and is read once per CONNECT that names a method, so nothing
 * cleverer pays off. Registration happens before the shard threads start
 * (thread creation orders the writes before their reads), which is why the
 * lookups need no lock. The protocol side (AUTH packets, parking the
 * CONNECT) lives in engine.c; this file only knows names.
 */
#include "core/authmethod.h"

#include <errno.h>
#include <string.h>

static const struct smq_authmethod *table[SMQ_AUTHMETHOD_MAX];

static int slot_of(const char *name, size_t len)
{
	for (int i = 0; i < SMQ_AUTHMETHOD_MAX; i++)
		if (table[i] && strlen(table[i]->name) == len && !memcmp(table[i]->name, name, len))
			return i;
	return -1;
}

int smq_authmethod_register(const struct smq_authmethod *m)
{
	if (!m || !m->name || !m->name[0] || !m->start || !m->step)
		return -EINVAL;
	if (slot_of(m->name, strlen(m->name)) >= 0)
		return -EEXIST;
	for (int i = 0; i < SMQ_AUTHMETHOD_MAX; i++) {
		if (!table[i]) {
			table[i] = m;
			return 0;
		}
	}
	return -ENOSPC;
}

int smq_authmethod_unregister(const char *name)
{
	int i = name ? slot_of(name, strlen(name)) : -1;

	if (i < 0)
		return -ENOENT;
	table[i] = NULL;
	return 0;
}

const struct smq_authmethod *smq_authmethod_find(struct smq_str name)
{
	int i = name.len ? slot_of((const char *)name.p, name.len) : -1;

	return i < 0 ? NULL : table[i];
}
