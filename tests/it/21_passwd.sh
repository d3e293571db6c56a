#!/bin/bash
# 21_passwd.sh - shardmq-passwd against mosquitto: files it writes are
# accepted by mosquitto itself (right password in, wrong password and unknown
# user out, for $7$ at several iteration counts and for $6$), and -c, -b, -D,
# -U and the prompt leave the same users as mosquitto_passwd does.
#
# Needs $BUILD/shardmq-passwd (BUILD defaults to build), mosquitto,
# mosquitto_passwd and mosquitto_pub; without mosquitto the broker checks are
# skipped, without mosquitto_passwd the comparisons are.
# Prints "N passed, M failed"; exits non-zero if anything failed.
#
# Try it: make BUILD=build-x build-x/shardmq-passwd && BUILD=build-x bash tests/it/21_passwd.sh

set -u
BUILD=${BUILD:-build}
PW=$BUILD/shardmq-passwd
MOSQ=/usr/sbin/mosquitto
TMP=$(mktemp -d /tmp/smq-passwd-XXXXXX)
PASS=0
FAIL=0
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

ok() { echo "ok   21_passwd/$1"; PASS=$((PASS + 1)); }
bad() { echo "FAIL 21_passwd/$1: $2"; FAIL=$((FAIL + 1)); }
skip() { echo "skip 21_passwd/$1: $2"; }

[ -x "$PW" ] || { echo "21_passwd: $PW not built"; echo "0 passed, 1 failed"; exit 1; }
HAVE_MP=false; command -v mosquitto_passwd > /dev/null && HAVE_MP=true
HAVE_MOSQ=false; [ -x "$MOSQ" ] && command -v mosquitto_pub > /dev/null && HAVE_MOSQ=true

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

users() { cut -d: -f1 "$1" | grep -v '^#' | grep -v '^$' | sort | tr '\n' ' '; }

# expect NAME WANT-RC WANT-IN-STDERR CMD...: run CMD, check status and stderr.
expect() {
	local name=$1 want=$2 msg=$3 rc
	shift 3
	"$@" > "$TMP/out" 2> "$TMP/err" < /dev/null
	rc=$?
	if [ "$rc" != "$want" ]; then
		bad "$name" "exit $rc, want $want (stderr: $(head -c 300 "$TMP/err"))"
	elif [ -n "$msg" ] && ! grep -qF -- "$msg" "$TMP/err"; then
		bad "$name" "stderr lacks '$msg': $(head -c 300 "$TMP/err")"
	else
		ok "$name"
	fi
}

# --- the command line -------------------------------------------------------
expect version_exits_0 0 "" "$PW" --version
grep -q "^shardmq-passwd " "$TMP/out" || bad version_names_the_tool "$(cat "$TMP/out")"
expect help_exits_0 0 "" "$PW" -h
grep -q -- "-b FILE USER PASSWORD" "$TMP/out" || bad help_shows_usage "$(head -4 "$TMP/out")"
expect no_arguments_is_an_error 1 "Usage:" "$PW"
expect c_and_D_together 1 "cannot be used together" "$PW" -c -D "$TMP/x" u
expect b_and_D_together 1 "-b cannot be used with -D" "$PW" -b -D "$TMP/x" u
expect b_needs_three_operands 1 "-b needs FILE USER PASSWORD" "$PW" -b "$TMP/x" u
expect bad_iterations 1 "-I: iterations" "$PW" -I 0 -b "$TMP/x" u p
expect bad_hash_name 1 "unknown hash" "$PW" -H md5 -b "$TMP/x" u p
expect colon_in_user_refused 1 "must not contain ':'" "$PW" -c -b "$TMP/x" 'a:b' p
expect hash_user_refused 1 "must not start with '#'" "$PW" -c -b "$TMP/x" '#a' p
expect update_missing_file 1 "$TMP/nope: No such file or directory" "$PW" -b "$TMP/nope" u p
[ -e "$TMP/x" ] && bad refused_commands_write_nothing "$TMP/x exists"

# --- what shardmq-passwd writes ---------------------------------------------
F=$TMP/pw
expect create_new_file 0 "" "$PW" -c -b "$F" alice 'right one'
if [ "$(stat -c %a "$F")" = 600 ]; then ok new_file_is_0600; else bad new_file_is_0600 "$(stat -c %a "$F")"; fi
expect add_second_user 0 "" "$PW" -b "$F" bob bobpw
expect add_sha512_user 0 "" "$PW" -H sha512 -b "$F" carol carolpw
expect add_7_iterations_user 0 "" "$PW" -I 7 -b "$F" dave davepw
expect update_existing_user 0 "" "$PW" -b "$F" bob 'bob: new$pw'
printf 'erin\nerin\n' | "$PW" "$F" erin > /dev/null 2>&1 && ok prompt_twice_from_stdin \
	|| bad prompt_twice_from_stdin "exit $?"
cp "$F" "$TMP/before"
printf 'one\ntwo\n' | "$PW" "$F" frank > /dev/null 2> "$TMP/err"
rc=$?
if [ $rc = 1 ] && grep -q "do not match" "$TMP/err" && cmp -s "$F" "$TMP/before"; then
	ok prompt_mismatch_changes_nothing
else
	bad prompt_mismatch_changes_nothing "exit $rc, $(cat "$TMP/err")"
fi
L=$(grep -c . "$F")
if [ "$(users "$F")" = "alice bob carol dave erin " ] && [ "$L" = 5 ]; then
	ok user_list_after_updates
else
	bad user_list_after_updates "$(users "$F") ($L lines)"
fi
grep -q '^carol:\$6\$[A-Za-z0-9+/]\{16\}\$[A-Za-z0-9+/]\{86\}==$' "$F" && ok sha512_line_format \
	|| bad sha512_line_format "$(grep ^carol "$F")"
grep -q '^dave:\$7\$7\$' "$F" && grep -q '^alice:\$7\$101\$' "$F" && ok iterations_written \
	|| bad iterations_written "$(cut -c1-20 "$F")"
chmod 640 "$F"
"$PW" -b "$F" alice 'right one' 2> /dev/null
if [ "$(stat -c %a "$F")" = 640 ]; then ok rewrite_keeps_mode; else bad rewrite_keeps_mode "$(stat -c %a "$F")"; fi
if ls "$TMP" | grep -q '\.tmp\.'; then bad no_temp_files_left "$(ls "$TMP")"; else ok no_temp_files_left; fi

expect delete_user 0 "" "$PW" -D "$F" erin
expect delete_unknown_user 1 "user 'nobody' not found" "$PW" -D "$F" nobody
if [ "$(users "$F")" = "alice bob carol dave " ]; then ok delete_removes_only_that_user
else bad delete_removes_only_that_user "$(users "$F")"; fi

# Comments and blank lines survive a change (mosquitto skips them too).
printf '# staff\n\n' > "$TMP/c"
cat "$F" >> "$TMP/c"
"$PW" -D "$TMP/c" alice 2> /dev/null
"$PW" -b "$TMP/c" bob again 2> /dev/null
if [ "$(head -2 "$TMP/c")" = "$(printf '# staff\n')" ] && [ "$(users "$TMP/c")" = "bob carol dave " ]
then
	ok comments_kept_on_changes
else
	bad comments_kept_on_changes "$(cut -c1-12 "$TMP/c")"
fi

# A line that is not "user:secret" stops every change, and the file stays as
# it was (Debian's mosquitto_passwd 2.0.11 says "Corrupt password file",
# exits 0 and drops every line after the bad one).
printf 'ivan:$7$1$x$y\nbroken line\njack:$7$1$x$y\n' > "$TMP/bad"
cp "$TMP/bad" "$TMP/before"
expect corrupt_file_refused 1 "$TMP/bad:2: missing ':'" "$PW" -b "$TMP/bad" kim pk
cmp -s "$TMP/bad" "$TMP/before" && ok corrupt_file_unchanged || bad corrupt_file_unchanged "changed"

# -U: plain text to hashed, and never a hash of a hash.
printf 'gina:gina pw\nhank:hank:pw\n' > "$TMP/plain"
expect convert_plain_text 0 "" "$PW" -U "$TMP/plain"
grep -q '^gina:\$7\$101\$' "$TMP/plain" && grep -q '^hank:\$7\$101\$' "$TMP/plain" \
	&& ok convert_hashes_every_line || bad convert_hashes_every_line "$(cut -c1-20 "$TMP/plain")"
cp "$TMP/plain" "$TMP/before"
expect convert_twice_refused 1 "already has a hashed password" "$PW" -U "$TMP/plain"
cmp -s "$TMP/plain" "$TMP/before" && ok convert_twice_changes_nothing \
	|| bad convert_twice_changes_nothing "file changed"

# --- mosquitto accepts what shardmq-passwd wrote ----------------------------
if $HAVE_MOSQ; then
	cat "$TMP/plain" >> "$F"
	P=$(free_port)
	{
		printf 'listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\n' "$P" "$F"
		printf 'persistence false\n'
		[ "$(id -u)" = 0 ] && printf 'user root\n'
	} > "$TMP/mosq.conf"
	"$MOSQ" -c "$TMP/mosq.conf" > "$TMP/mosq.log" 2>&1 &
	MP=$!
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$P") 2>/dev/null && break; sleep 0.05; done
	# pub NAME WANT(ok|refused) USER PASSWORD
	pub() {
		if mosquitto_pub -p "$P" -t pw/t -m x -q 1 -u "$3" -P "$4" > /dev/null 2>&1; then got=ok
		else got=refused; fi
		if [ "$got" = "$2" ]; then ok "mosquitto_$1"; else bad "mosquitto_$1" "got $got, want $2"; fi
	}
	pub accepts_pbkdf2_user ok alice 'right one'
	pub refuses_wrong_password refused alice 'right two'
	pub refuses_unknown_user refused zoe 'right one'
	pub accepts_updated_password ok bob 'bob: new$pw'
	pub refuses_old_password refused bob bobpw
	pub accepts_sha512_user ok carol carolpw
	pub accepts_7_iterations_user ok dave davepw
	pub accepts_converted_user ok gina 'gina pw'
	pub accepts_converted_password_with_colon ok hank 'hank:pw'
	pub refuses_deleted_user refused erin erin
	# (mosquitto warns when run as root: not about the file)
	if grep -i "error\|warning" "$TMP/mosq.log" | grep -qv "run as root"; then
		bad mosquitto_log_has_no_errors "$(grep -i "error\|warning" "$TMP/mosq.log" | head -3)"
	else
		ok mosquitto_log_has_no_errors
	fi
	kill $MP; wait $MP 2>/dev/null
else
	skip mosquitto_accepts_the_file "mosquitto or mosquitto_pub not installed"
fi

# --- same users as mosquitto_passwd -----------------------------------------
# same NAME ARGS...: run both tools with ARGS on their own copy (FILE -> the
# copy), compare exit status (zero or not) and the resulting user lists.
same() {
	local name=$1 a b ra rb
	shift
	a=("${@//FILE/$TMP/m}")
	b=("${@//FILE/$TMP/s}")
	mosquitto_passwd "${a[@]}" > /dev/null 2>&1 < /dev/null; ra=$?
	"$PW" "${b[@]}" > /dev/null 2>&1 < /dev/null; rb=$?
	if [ $((ra != 0)) != $((rb != 0)) ]; then
		bad "same_as_mosquitto_passwd/$name" "mosquitto_passwd exit $ra, shardmq-passwd $rb"
	elif [ -e "$TMP/m" ] && [ "$(users "$TMP/m")" != "$(users "$TMP/s")" ]; then
		bad "same_as_mosquitto_passwd/$name" "'$(users "$TMP/m")' vs '$(users "$TMP/s")'"
	else
		ok "same_as_mosquitto_passwd/$name"
	fi
}
if $HAVE_MP; then
	rm -f "$TMP/m" "$TMP/s"
	same missing_file_without_c -b FILE a pa
	same create -c -b FILE a pa
	same add -b FILE b pb
	same add_sha512 -H sha512 -b FILE c pc
	same add_iterations -I 3 -b FILE d pd
	same update -b FILE b pb2
	same delete -D FILE a
	same delete_unknown -D FILE nobody
	same create_overwrites -c -b FILE e pe
	same add_after_overwrite -b FILE f pf
	same colon_in_user -b FILE 'x:y' p
	printf 'x:px\ny:py\nz:pz\n' > "$TMP/m"
	cp "$TMP/m" "$TMP/s"
	same convert -U FILE
	printf 'pw\npw\n' > "$TMP/in"
	mosquitto_passwd -c "$TMP/m" p < "$TMP/in" > /dev/null 2>&1
	"$PW" -c "$TMP/s" p < "$TMP/in" > /dev/null 2>&1
	if [ "$(users "$TMP/m")" = "p " ] && [ "$(users "$TMP/s")" = "p " ]; then
		ok same_as_mosquitto_passwd/prompt_create
	else
		bad same_as_mosquitto_passwd/prompt_create "'$(users "$TMP/m")' vs '$(users "$TMP/s")'"
	fi
else
	skip same_as_mosquitto_passwd "mosquitto_passwd not installed"
fi

echo "$PASS passed, $FAIL failed"
[ $FAIL = 0 ]
