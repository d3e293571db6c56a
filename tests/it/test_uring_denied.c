/* test_uring_denied.c - shardmq where io_uring is forbidden.
 *
 * Containers often block io_uring with a seccomp profile. This starts the
 * real binary under a seccomp filter that makes io_uring_setup fail with
 * EPERM (as docker's default profile does) and checks that shardmq exits
 * with status 1 and a message that names the cause and the fix, instead of
 * crashing or hanging.
 *
 * Run: make check T='it_uring_denied/...'  (needs $SHARDMQ_BIN, default
 * build/shardmq).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Allow everything except io_uring_setup, which fails with @err. */
static int deny_io_uring(int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (uint32_t)err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -errno;
	return 0;
}

/* Run shardmq with io_uring_setup failing with @err; returns its exit
 * status and what it printed on stderr in @out. */
static int run_denied(int err, char *out, size_t outlen)
{
	const char *bin = getenv("SHARDMQ_BIN") ? getenv("SHARDMQ_BIN") : "build/shardmq";
	int pipefd[2], status;
	ssize_t n, got = 0;
	pid_t pid;

	cr_assert_eq(pipe(pipefd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		if (deny_io_uring(err))
			_exit(99);
		execl(bin, bin, "-p", "0", "--shards", "2", (char *)NULL);
		_exit(98);
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], out + got, outlen - 1 - (size_t)got)) > 0)
		got += n;
	out[got] = 0;
	close(pipefd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status), "shardmq did not exit normally: %s", out);
	return WEXITSTATUS(status);
}

Test(it_uring_denied, seccomp_eperm_exits_1_and_explains, .timeout = 20)
{
	char out[4096];
	int rc = run_denied(EPERM, out, sizeof(out));

	cr_assert_neq(rc, 99, "could not install the seccomp filter");
	cr_assert_neq(rc, 98, "could not exec $SHARDMQ_BIN");
	cr_expect_eq(rc, 1, "exit status %d, want 1; stderr: %s", rc, out);
	cr_expect(strstr(out, "cannot set up io_uring"), "no diagnosis in: %s", out);
	cr_expect(strstr(out, "kernel.io_uring_disabled") && strstr(out, "seccomp"),
		  "no fix suggested in: %s", out);
}

Test(it_uring_denied, enosys_says_kernel_lacks_io_uring, .timeout = 20)
{
	char out[4096];
	int rc = run_denied(ENOSYS, out, sizeof(out));

	cr_expect_eq(rc, 1, "exit status %d, want 1; stderr: %s", rc, out);
	cr_expect(strstr(out, "no io_uring support"), "no diagnosis in: %s", out);
}

Test(it_uring_denied, memlock_enomem_suggests_ulimit, .timeout = 20)
{
	char out[4096];
	int rc = run_denied(ENOMEM, out, sizeof(out));

	cr_expect_eq(rc, 1, "exit status %d, want 1; stderr: %s", rc, out);
	cr_expect(strstr(out, "ulimit -l"), "no memlock hint in: %s", out);
}
