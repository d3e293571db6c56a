/* listen.h - TCP listeners shared by shards through SO_REUSEPORT. */
#ifndef SMQ_LISTEN_H
#define SMQ_LISTEN_H

#include <stdint.h>
#include <sys/socket.h>

/* Open a non-blocking TCP listener on @addr (IPv4 or IPv6 literal, or a
 * host name) and @port with SO_REUSEPORT, so every shard can bind its own
 * socket to the same address and the kernel spreads connections among them.
 * Port 0 picks a free port; read it back with smq_listen_port(). Returns the
 * fd or -errno. */
int smq_listen_open(const char *addr, uint16_t port, int backlog);

/* SO_REUSEPORT would let a second broker share the port silently: before
 * the shards bind, check that nobody listens on @addr:@port. 0 or -errno
 * (-EADDRINUSE). */
int smq_listen_check_free(const char *addr, uint16_t port);

/* The local port of a bound socket, or -errno. */
int smq_listen_port(int fd);

/* "1.2.3.4:5678" / "[::1]:5678" into @out (always terminated). */
void smq_addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen);

#endif
