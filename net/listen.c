/* listen.c - SO_REUSEPORT listeners and address formatting.
 *
 * Each shard opens its own listening socket on the same address; the kernel
 * then hashes incoming connections across them, which is the first level of
 * load spreading.
 */
#include "net/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int open_one(const struct addrinfo *ai, const struct smq_listen_spec *sp, int backlog,
		    bool reuseport)
{
	int one = 1, v6only = sp->v6only;
	int fd, ret;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))))
		goto out_errno;
	if (ai->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)))
		goto out_errno;
	if (sp->iface && *sp->iface &&
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, sp->iface, (socklen_t)strlen(sp->iface)))
		goto out_errno;
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, backlog))
		goto out_errno;
	return fd;
out_errno:
	ret = -errno;
	close(fd);
	return ret;
}

static int open_any(const struct smq_listen_spec *sp, int backlog, bool reuseport)
{
	const char *addr = sp->addr;
	struct addrinfo hints, *res, *ai;
	char portstr[8];
	int fd = -EADDRNOTAVAIL;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = sp->family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%u", sp->port);
	if (getaddrinfo(addr && *addr ? addr : NULL, portstr, &hints, &res))
		return -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = open_one(ai, sp, backlog, reuseport);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	return fd;
}

int smq_listen_unix(const char *path, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd, probe, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	if (!lstat(path, &sb)) {
		if (!S_ISSOCK(sb.st_mode))
			return -EEXIST;	/* a file that is not ours to remove */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return -errno;
		ret = connect(probe, (struct sockaddr *)&sa, sizeof(sa));
		close(probe);
		if (!ret)
			return -EADDRINUSE;
		unlink(path);	/* nobody accepts there: left by a broker that died */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, backlog)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int smq_listen_open(const struct smq_listen_spec *sp, int backlog)
{
	return open_any(sp, backlog, true);
}

int smq_listen_check_free(const struct smq_listen_spec *sp)
{
	/* Without SO_REUSEPORT this bind fails if anyone listens there,
	 * including another shardmq whose sockets do have it. A broker that
	 * was just killed still holds its sockets for some tens of ms while
	 * the kernel tears its io_uring down: a restart waits up to a second
	 * for them before it calls the port taken. */
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	int fd = open_any(sp, 1, false);

	for (int i = 0; fd == -EADDRINUSE && i < 20; i++) {
		nanosleep(&pause, NULL);
		fd = open_any(sp, 1, false);
	}
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

void smq_listen_spec_init(struct smq_listen_spec *sp, const char *addr, uint16_t port,
			  int domain, const char *iface)
{
	int fd;

	memset(sp, 0, sizeof(*sp));
	sp->addr = addr;
	sp->port = port;
	sp->iface = iface;
	sp->family = domain == 4 ? AF_INET : domain == 6 ? AF_INET6 : AF_UNSPEC;
	sp->v6only = domain == 6 || (addr && *addr);
	if (addr && *addr)
		return;
	/* Every interface: one dual-stack IPv6 socket covers IPv4 too, where
	 * the host has IPv6 at all. */
	if (domain == 4) {
		sp->addr = "0.0.0.0";
		return;
	}
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 && domain != 6) {
		sp->addr = "0.0.0.0";
		sp->family = AF_INET;
		return;
	}
	if (fd >= 0)
		close(fd);
	sp->addr = "::";
	sp->family = AF_INET6;
}

int smq_listen_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return -errno;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void smq_addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN];

	(void)len;
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, outlen, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, outlen, "%s:%u", host, ntohs(s4->sin_port));
	} else if (sa->sa_family == AF_UNIX) {
		snprintf(out, outlen, "unix");
	} else {
		snprintf(out, outlen, "?");
	}
}
