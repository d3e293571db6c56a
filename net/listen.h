/* listen.h - TCP listeners shared by shards through SO_REUSEPORT. */
#ifndef SMQ_LISTEN_H
#define SMQ_LISTEN_H

#include <stdint.h>
#include <sys/socket.h>

/* Where to listen. Fill it with smq_listen_spec_init(); @addr and @iface
 * are borrowed. */
struct smq_listen_spec {
	const char *addr;	/* literal or host name */
	uint16_t port;
	int family;		/* AF_UNSPEC, AF_INET or AF_INET6 */
	int v6only;		/* IPV6_V6ONLY on an IPv6 socket */
	const char *iface;	/* SO_BINDTODEVICE, or NULL/"" */
};

/* A listening Unix stream socket at @path: a stale socket file left by a
 * broker that died is replaced; one that a live process still accepts on
 * is -EADDRINUSE. Returns the fd or -errno. */
int smq_listen_unix(const char *path, int backlog);

/* @addr "" or NULL means every interface: IPv4 and IPv6 on one dual-stack
 * socket ("::" with IPV6_V6ONLY off), or 0.0.0.0 on a host without IPv6.
 * @domain 4 or 6 keeps to that family (mosquitto's socket_domain), 0 allows
 * both. */
void smq_listen_spec_init(struct smq_listen_spec *sp, const char *addr, uint16_t port,
			  int domain, const char *iface);

/* Open a non-blocking TCP listener at @sp with SO_REUSEPORT, so every shard
 * can bind its own socket to the same address and the kernel spreads
 * connections among them. Port 0 picks a free port; read it back with
 * smq_listen_port(). Returns the fd or -errno. */
int smq_listen_open(const struct smq_listen_spec *sp, int backlog);

/* SO_REUSEPORT would let a second broker share the port silently: before
 * the shards bind, check that nobody listens at @sp. 0 or -errno
 * (-EADDRINUSE). */
int smq_listen_check_free(const struct smq_listen_spec *sp);

/* The local port of a bound socket, or -errno. */
int smq_listen_port(int fd);

/* "1.2.3.4:5678" / "[::1]:5678" into @out (always terminated). */
void smq_addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen);

#endif
