/* passwd.c - shardmq-passwd: manage a mosquitto-compatible password file.
 *
 * The flags and their meaning follow mosquitto_passwd (Debian 12's 2.0.11),
 * so a file written by either tool is read by both brokers:
 *
 *	shardmq-passwd [-H hash] [-I iter] [-c | -D] FILE USER   prompt (twice, no echo)
 *	shardmq-passwd [-H hash] [-I iter] [-c] -b FILE USER PASSWORD
 *	shardmq-passwd [-I iter] -U FILE                         hash a plain-text file
 *
 * Every change is written whole to a temporary file beside FILE, fsync'ed
 * and renamed over FILE, so a crash or a full disk leaves the old file or
 * the new one, never half of each (mosquitto_passwd rewrites in place from
 * a backup copy). A new file gets mode 0600; a rewritten one keeps its mode
 * and, when allowed, its owner and group (the broker often reads it through
 * its group). A symlink is followed: the target is replaced.
 *
 * Where we differ from mosquitto_passwd, on purpose:
 *  - comment ('#') and blank lines are kept as they are (the broker skips
 *    them; mosquitto_passwd calls the file corrupt);
 *  - any other line that is not "user:secret" stops the run with
 *    "FILE:LINE: why" and status 1, the file untouched (mosquitto_passwd
 *    2.0.11 says "Corrupt password file", exits 0 and drops every line
 *    from the bad one on);
 *  - -U refuses a file in which a password is already hashed ("$6$" or
 *    "$7$") instead of hashing the hash, which would lock that user out;
 *  - -U hashes all the text after the first ':' (mosquitto_passwd cuts a
 *    plain-text password at a second ':');
 *  - a user name may not start with '#' (the line would be a comment) or
 *    begin or end with blanks (the broker trims them);
 *  - a user listed twice is written once (the first line is updated, the
 *    later ones dropped), as the loader refuses duplicates;
 *  - the exit status is 1 for every error (mosquitto_passwd: 2 when the
 *    two passwords typed differ).
 *
 * Left to others: the file format, the hashing and the line rules
 * (core/passwd.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cmd/lib/toolopts.h"
#include "core/passwd.h"
#include "core/version.h"


#define PASS_MAX 65535		/* an MQTT password is a u16-prefixed field */
#define USER_MAX 65535

enum mode { M_UPDATE, M_CREATE, M_DELETE, M_CONVERT };

struct conf {
	enum mode mode;
	bool batch;
	unsigned iterations;	/* SMQ_PASSWD_SHA512 for -H sha512 */
	const char *file;
	const char *user;
	const char *password;	/* -b, or what was typed */
};

static const char *prog = "shardmq-passwd";

static void usage(FILE *f)
{
	fprintf(f,
		"shardmq-passwd manages password files for shardmq and mosquitto.\n"
		"\n"
		"Usage: %s [-H sha512-pbkdf2|sha512] [-I iterations] [-c | -D] FILE USER\n"
		"       %s [-H sha512-pbkdf2|sha512] [-I iterations] [-c] -b FILE USER PASSWORD\n"
		"       %s [-I iterations] -U FILE\n"
		"       %s --version | --help\n"
		"\n"
		" -b  batch mode: the password is on the command line (else it is asked for\n"
		"     twice, without echo, on the terminal or read as two lines from stdin)\n"
		" -c  create a new file, overwriting any existing one\n"
		" -D  delete USER\n"
		" -H  hash: sha512-pbkdf2 ($7$, the default) or sha512 ($6$, mosquitto 1.6)\n"
		" -I  PBKDF2 iterations, 1..%d (%u, mosquitto_passwd's default)\n"
		" -U  hash every plain-text \"user:password\" line of FILE in place\n"
		" -h, --help  this text            --version  the version\n"
		"\n"
		"The file is replaced atomically; a new file gets mode 0600.\n"
		"Exit status: 0 done, 1 error (message on stderr).\n",
		prog, prog, prog, prog, INT32_MAX, SMQ_PASSWD_ITERATIONS);
}

static int bad_usage(const char *what)
{
	fprintf(stderr, "%s: %s\nUse '%s --help' to see usage.\n", prog, what, prog);
	return 1;
}

/* getopt's '?': @opt is the option letter (0 for a long one), @arg the word. */
static int bad_option(int opt, const char *arg)
{
	char what[128];

	if (opt == 'H' || opt == 'I')
		snprintf(what, sizeof(what), "-%c needs an argument", opt);
	else if (opt)
		snprintf(what, sizeof(what), "unknown option '-%c'", opt);
	else
		snprintf(what, sizeof(what), "unknown option '%.100s'", arg);
	return bad_usage(what);
}

/* ---- the password prompt ---- */

static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

/* Ctrl-C at the prompt must not leave the terminal without echo. */
static void restore_tty(int sig)
{
	(void)sig;
	if (tty_changed)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	_exit(1);
}

/* Read one line from stdin into @buf (PASS_MAX + 2 bytes) without echo
 * when stdin is a terminal. Returns 0, or 1 after saying what is wrong. */
static int read_line(const char *prompt, char *buf, size_t cap)
{
	struct termios quiet;
	size_t n;
	bool tty = isatty(STDIN_FILENO) && !tcgetattr(STDIN_FILENO, &saved_tty);
	char *got;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tty) {
		quiet = saved_tty;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tty_changed = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
	}
	got = fgets(buf, (int)cap, stdin);
	if (tty_changed) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
		tty_changed = 0;
	}
	if (!tty)
		fputc('\n', stderr);
	if (!got) {
		fprintf(stderr, "%s: no password given\n", prog);
		return 1;
	}
	n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(stdin)) {
		fprintf(stderr, "%s: password longer than %d bytes\n", prog, PASS_MAX);
		return 1;
	}
	return 0;
}

static int ask_password(char *pw, char *again, size_t cap)
{
	struct sigaction sa = { .sa_handler = restore_tty };

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (read_line("Password: ", pw, cap) || read_line("Reenter password: ", again, cap))
		return 1;
	if (!pw[0]) {
		fprintf(stderr, "%s: empty password\n", prog);
		return 1;
	}
	if (strcmp(pw, again)) {
		fprintf(stderr, "%s: passwords do not match\n", prog);
		return 1;
	}
	return 0;
}

/* ---- the new file's contents ---- */

/* Write "@user:HASH\n" for @pass to @out. */
static int put_entry(FILE *out, const struct conf *c, const char *user, size_t ulen,
		     const char *pass, size_t plen)
{
	char hash[SMQ_PASSWD_HASH_MAX];
	int ret = smq_passwd_hash(hash, sizeof(hash), (const uint8_t *)pass, plen, c->iterations);

	if (ret) {
		fprintf(stderr, "%s: cannot hash the password: %s\n", prog, strerror(-ret));
		return 1;
	}
	fprintf(out, "%.*s:%s\n", (int)ulen, user, hash);
	return 0;
}

static bool is_hashed(const char *s, size_t n)
{
	return n >= 3 && s[0] == '$' && (s[1] == '6' || s[1] == '7') && s[2] == '$';
}

/* One line of the old file, @lineno, to @out according to the mode.
 * *@found counts the lines of c->user. Returns 0 or 1 (said why). */
static int copy_line(FILE *out, const struct conf *c, const char *line, size_t len,
		     unsigned lineno, unsigned *found)
{
	const char *u, *s;
	size_t un, sn;
	char why[512];
	int ret = smq_passwd_split(line, len, &u, &un, &s, &sn, why, sizeof(why));

	if (ret < 0) {
		fprintf(stderr, "%s: %s:%u: %s (nothing changed)\n", prog, c->file, lineno,
			why);
		return 1;
	}
	if (ret == 0 && c->mode == M_CONVERT) {
		if (is_hashed(s, sn)) {
			fprintf(stderr, "%s: %s:%u: user '%.*s' already has a hashed password; "
				"-U would hash the hash (nothing changed)\n",
				prog, c->file, lineno, (int)un, u);
			return 1;
		}
		return put_entry(out, c, u, un, s, sn);
	}
	if (ret == 0 && c->user && un == strlen(c->user) && !memcmp(u, c->user, un)) {
		if (c->mode == M_UPDATE && !(*found)++)
			return put_entry(out, c, u, un, c->password, strlen(c->password));
		(*found)++;
		return 0;	/* deleted, or a duplicate of the updated line */
	}
	fwrite(line, 1, len, out);
	if (len && line[len - 1] != '\n')
		fputc('\n', out);
	return 0;
}

/* The new contents of c->file from its old contents @in into @out. */
static int rewrite(FILE *in, FILE *out, const struct conf *c)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0, found = 0;
	int ret = 0;

	while (!ret && (n = getline(&line, &cap, in)) >= 0)
		ret = copy_line(out, c, line, (size_t)n, ++lineno, &found);
	free(line);
	if (ret)
		return ret;
	if (ferror(in)) {
		fprintf(stderr, "%s: %s: %s\n", prog, c->file, strerror(errno));
		return 1;
	}
	if (c->mode == M_DELETE && !found) {
		fprintf(stderr, "%s: user '%s' not found in %s\n", prog, c->user, c->file);
		return 1;
	}
	if (c->mode == M_UPDATE && !found)
		return put_entry(out, c, c->user, strlen(c->user), c->password,
				 strlen(c->password));
	return 0;
}

/* ---- writing it safely ---- */

/* Replace @path by @len bytes of @data: temp file beside it, fsync, rename,
 * fsync the directory. @old is the file being replaced (NULL: new file). */
static int replace_file(const char *path, const char *data, size_t len, const struct stat *old)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + sizeof(".tmp.XXXXXX"));
	char *dir;
	int fd, dfd, err = 0;

	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
	fd = mkstemp(tmp);	/* mode 0600 */
	if (fd < 0) {
		err = -errno;
		goto out_free;
	}
	if (old) {
		/* Group first: fchown may fail for a non-root user, fchmod won't. */
		if (fchown(fd, old->st_uid, old->st_gid))
			(void)!fchown(fd, (uid_t)-1, old->st_gid);
		fchmod(fd, old->st_mode & 07777);
	}
	if (write(fd, data, len) != (ssize_t)len || fsync(fd))
		err = errno ? -errno : -EIO;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err) {
		unlink(tmp);
		goto out_free;
	}
	/* The rename is durable once the directory is: "a/b.tmp.X" -> "a",
	 * "/b.tmp.X" -> "/", "b.tmp.X" -> ".". */
	dir = strrchr(tmp, '/');
	if (dir)
		dir[dir == tmp] = '\0';
	dfd = open(dir ? tmp : ".", O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
out_free:
	free(tmp);
	return err;
}

/* ---- the whole run ---- */

static int run(struct conf *c)
{
	static char pw[PASS_MAX + 2], again[PASS_MAX + 2];
	char *real, *data = NULL;
	size_t len = 0;
	struct stat st;
	bool exists;
	FILE *in = NULL, *out;
	int ret, err;

	real = realpath(c->file, NULL);	/* replace a symlink's target, not the link */
	exists = real && !stat(real, &st);
	if (!exists && c->mode != M_CREATE) {
		fprintf(stderr, "%s: %s: %s\n", prog, c->file, strerror(errno));
		free(real);
		return 1;
	}
	if (exists && c->mode != M_CREATE) {
		in = fopen(real, "r");
		if (!in) {
			fprintf(stderr, "%s: %s: %s\n", prog, c->file, strerror(errno));
			free(real);
			return 1;
		}
	}
	/* Asked once the file is known to be readable, before it changes. */
	if (!c->batch && (c->mode == M_UPDATE || c->mode == M_CREATE)) {
		ret = ask_password(pw, again, sizeof(pw));
		if (ret)
			goto out_close;
		c->password = pw;
	}
	out = open_memstream(&data, &len);
	if (!out) {
		fprintf(stderr, "%s: %s\n", prog, strerror(errno));
		ret = 1;
		goto out_close;
	}
	if (in)
		ret = rewrite(in, out, c);
	else
		ret = put_entry(out, c, c->user, strlen(c->user), c->password,
				strlen(c->password));
	if (fclose(out) && !ret) {
		fprintf(stderr, "%s: %s\n", prog, strerror(errno));
		ret = 1;
	}
	if (!ret) {
		err = replace_file(real ? real : c->file, data, len, exists ? &st : NULL);
		if (err) {
			fprintf(stderr, "%s: cannot write %s: %s\n", prog, c->file, strerror(-err));
			ret = 1;
		}
	}
	free(data);
out_close:
	memset(pw, 0, sizeof(pw));
	memset(again, 0, sizeof(again));
	if (in)
		fclose(in);
	free(real);
	return ret;
}

/* mosquitto_passwd's rules, plus '#' and blanks (see the top comment). */
static int check_user(const char *u)
{
	size_t n = strlen(u), i;

	if (!n)
		return bad_usage("empty user name");
	if (n > USER_MAX)
		return bad_usage("user name longer than 65535 bytes");
	for (i = 0; i < n; i++) {
		if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f)
			return bad_usage("user name must not contain control characters");
	}
	if (strchr(u, ':'))
		return bad_usage("user name must not contain ':'");
	if (u[0] == '#')
		return bad_usage("user name must not start with '#' (the line would be a comment)");
	if (u[0] == ' ' || u[n - 1] == ' ')
		return bad_usage("user name must not begin or end with a space");
	return 0;
}

static int parse_args(struct conf *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long iter = SMQ_PASSWD_ITERATIONS;
	bool sha512 = false;
	unsigned modes = 0;	/* a bit per mode given */
	int opt, want;

	opterr = 0;
	/* '+': stop at the first operand, so a password may start with '-'. */
	while ((opt = getopt_long(argc, argv, "+bcDUH:I:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'b': c->batch = true; break;
		case 'c': modes |= 1 << (c->mode = M_CREATE); break;
		case 'D': modes |= 1 << (c->mode = M_DELETE); break;
		case 'U': modes |= 1 << (c->mode = M_CONVERT); break;
		case 'H':
			if (!strcmp(optarg, "sha512"))
				sha512 = true;
			else if (!strcmp(optarg, "sha512-pbkdf2"))
				sha512 = false;
			else
				return bad_usage("unknown hash (-H sha512-pbkdf2 or -H sha512)");
			break;
		case 'I':
			if (!smq_tool_parse_uint(optarg, INT32_MAX, &iter) || !iter)
				return bad_usage("-I: iterations must be 1..2147483647");
			break;
		case 'h': usage(stdout); exit(0);
		case 'v': printf("%s version %s\n", prog, SMQ_VERSION); exit(0);
		default:
			return bad_option(optopt, argv[optind - 1]);
		}
	}
	if (modes & (modes - 1))
		return bad_usage("-c, -D and -U cannot be used together");
	if (c->batch && (c->mode == M_DELETE || c->mode == M_CONVERT))
		return bad_usage("-b cannot be used with -D or -U");
	c->iterations = sha512 ? SMQ_PASSWD_SHA512 : (unsigned)iter;
	want = c->mode == M_CONVERT ? 1 : c->batch ? 3 : 2;
	if (argc - optind != want)
		return bad_usage(c->mode == M_CONVERT ? "-U takes the password file only"
				 : c->batch ? "-b needs FILE USER PASSWORD" : "need FILE and USER");
	c->file = argv[optind];
	if (c->mode == M_CONVERT)
		return 0;
	c->user = argv[optind + 1];
	c->password = c->batch ? argv[optind + 2] : NULL;
	if (c->password && strlen(c->password) > PASS_MAX)
		return bad_usage("password longer than 65535 bytes");
	return check_user(c->user);
}

int main(int argc, char **argv)
{
	struct conf c = { .mode = M_UPDATE };
	int ret;

	if (argc == 1) {
		usage(stderr);
		return 1;
	}
	ret = parse_args(&c, argc, argv);
	if (ret)
		return ret;
	return run(&c);
}
