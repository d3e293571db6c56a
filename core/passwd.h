/* passwd.h - mosquitto-compatible password files: load, check, hash.
 *
 * The file format is the one mosquitto 2.0 reads and mosquitto_passwd
 * writes, one user a line:
 *
 *	user:$7$ITERATIONS$SALT$HASH	PBKDF2-HMAC-SHA512, ITERATIONS >= 1
 *					(mosquitto_passwd's default: 101)
 *	user:$6$SALT$HASH		SHA-512(password || salt), mosquitto <= 1.6
 *
 * SALT and HASH are standard base64 (with '=' padding) of 12 and 64 bytes.
 * Lines that are empty or hold only blanks, and lines whose first byte is
 * '#', are ignored (mosquitto skips them too). Blanks around the user name
 * and around the hash are trimmed, as mosquitto does; a user name may hold
 * any other byte but ':' and newline. Unlike mosquitto, which logs a bad
 * line and drops it, the loader refuses the whole file at the first bad
 * line, and refuses a user listed twice (mosquitto keeps an arbitrary one).
 *
 * Passwords are byte strings: all @plen bytes are hashed. (mosquitto hashes
 * up to the first NUL byte; only a password with a NUL in it differs.)
 *
 * Cost of one smq_passwd_check(), measured on the 2-core development VM
 * (Debian 12, wolfSSL 5.5.4, -O2, thread CPU time, median of 9 runs; printed by
 * "build/tests/unit/test_passwd --verbose", test cost_of_one_check_by_hash_type):
 *	$7$, 101 iterations	~140 us (110..220 us over runs; OpenSSL 3 takes ~90 us on
 *				the same VM: wolfSSL's PBKDF2 is the slow part)
 *	$6$			~0.5 us (one SHA-512 of password + salt)
 * PBKDF2 cost grows linearly with the iteration count (-I 2000: ~3 ms).
 * An unknown user costs the same as a wrong password (see smq_passwd_check).
 * Checking inline, a shard loop stalls ~140 us per CONNECT with a password:
 * at most ~7,000 such CONNECTs/s per shard, and every other client of the
 * shard waits meanwhile. Loading a 100k-user file takes ~100 ms.
 *
 * Threads: a loaded struct smq_passwd is immutable; any number of threads
 * may call smq_passwd_check() on it at once. smq_passwd_free() only once no
 * thread uses it any more.
 */
#ifndef SMQ_PASSWD_H
#define SMQ_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* mosquitto_passwd's default iteration count for $7$. */
#define SMQ_PASSWD_ITERATIONS 101u
/* Pass as @iterations to smq_passwd_hash() for the old "$6$" format
 * (mosquitto_passwd -H sha512). */
#define SMQ_PASSWD_SHA512 0u
/* Room for any smq_passwd_hash() output, terminating NUL included:
 * "$7$" + 10 digits + "$" + 16 + "$" + 88 + NUL. */
#define SMQ_PASSWD_HASH_MAX 128

struct smq_passwd;

/* Load the password file at @path. On 0, *@out is a new table the caller
 * frees with smq_passwd_free(). On failure returns -errno (-ENOENT,
 * -EACCES... from the file system: @err = "PATH: strerror"), -EINVAL for a
 * bad line (@err = "PATH:LINE: what is wrong", first bad line only) or
 * -ENOMEM, and *@out is untouched. An empty file loads as an empty table. */
int smq_passwd_load(const char *path, struct smq_passwd **out, char *err, size_t errlen);

/* Free @pw (NULL is fine). */
void smq_passwd_free(struct smq_passwd *pw);

/* Number of users in @pw. */
size_t smq_passwd_count(const struct smq_passwd *pw);

/* True when @user (@ulen bytes) is in @pw and @pass (@plen bytes) is its
 * password. Comparison of the hashes is constant-time, and an unknown user
 * is checked against a dummy entry with the hash type and iteration count
 * most entries have, so that it costs as much as a wrong password (no
 * user-enumeration timing oracle). Thread-safe: @pw is only read. */
bool smq_passwd_check(const struct smq_passwd *pw, const char *user, size_t ulen,
		      const uint8_t *pass, size_t plen);

/* Hash @pass with a fresh random salt into @out, NUL-terminated, the way
 * mosquitto_passwd does: "$7$ITER$SALT$HASH" for @iterations >= 1, or
 * "$6$SALT$HASH" for SMQ_PASSWD_SHA512. The user name and ':' are the
 * caller's. Returns 0, -ENOSPC when @cap is too small (SMQ_PASSWD_HASH_MAX
 * is always enough), -EINVAL for iterations > INT32_MAX or plen > INT32_MAX,
 * or -EIO if the random source or wolfCrypt fails. */
int smq_passwd_hash(char *out, size_t cap, const uint8_t *pass, size_t plen, unsigned iterations);

/* Split one line of a password file (@len bytes, a trailing "\n" or "\r\n"
 * allowed) the way smq_passwd_load() does. Returns 1 for a line to ignore
 * (blank, comment), 0 for an entry with the user name (*@user, *@ulen) and
 * the secret (*@secret, *@slen) pointing into @line, blanks trimmed, both
 * non-empty, or -EINVAL with the
 * reason in @why (no file name or line number). The secret is not checked:
 * it may be a plain-text password (shardmq-passwd -U reads those). */
int smq_passwd_split(const char *line, size_t len, const char **user, size_t *ulen,
		     const char **secret, size_t *slen, char *why, size_t whylen);

#endif
