/* toolprops.h - the -D/--property option of the tools: MQTT 5 properties
 * named as mosquitto's clients name them, per packet.
 *
 *	-D publish content-type text/plain -D connect user-property k v
 *
 * Each value is checked against its type (byte, two- and four-byte
 * integers, variable byte integer, UTF-8 string, binary, string pair) and
 * each property against the packet it is given for, as MQTT 5 section 2.2.2
 * allows it from a client; a property that does not fit its packet is
 * refused with a message that names the packets it may go in. User
 * properties repeat; any other property given twice for one packet is
 * refused ([MQTT-2.2.2-2] makes it a Protocol Error).
 *
 * Ownership: strings and binary values point into the arguments (argv
 * lives as long as the program); user properties are encoded into buffers
 * owned by struct smq_tool_props until smq_tool_props_fini().
 */
#ifndef SMQ_TOOLPROPS_H
#define SMQ_TOOLPROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"

/* The packets -D names, in mosquitto's words. */
enum smq_tool_pcmd {
	SMQ_TOOL_P_CONNECT,
	SMQ_TOOL_P_PUBLISH,
	SMQ_TOOL_P_PUBACK,
	SMQ_TOOL_P_PUBREC,
	SMQ_TOOL_P_PUBREL,
	SMQ_TOOL_P_PUBCOMP,
	SMQ_TOOL_P_SUBSCRIBE,
	SMQ_TOOL_P_UNSUBSCRIBE,
	SMQ_TOOL_P_DISCONNECT,
	SMQ_TOOL_P_AUTH,
	SMQ_TOOL_P_WILL,
	SMQ_TOOL_P_NCMDS,
};

struct smq_tool_props {
	struct smq_props p[SMQ_TOOL_P_NCMDS];
	uint8_t *user[SMQ_TOOL_P_NCMDS];	/* owned raw user properties */
	size_t user_cap[SMQ_TOOL_P_NCMDS];
	bool any;				/* some -D was given */
};

/* Add the property @name = @value (and @value2 for user-property) to the
 * packet @cmd. Returns 0, or prints why not (through smq_tool_bad()) and
 * returns the usage exit status. */
int smq_tool_props_add(struct smq_tool_props *t, const char *cmd, const char *name,
		       const char *value, const char *value2);

/* The properties given for @cmd, or NULL if none were. */
const struct smq_props *smq_tool_props_get(const struct smq_tool_props *t,
					   enum smq_tool_pcmd cmd);

/* Free the user property buffers. */
void smq_tool_props_fini(struct smq_tool_props *t);

#endif
