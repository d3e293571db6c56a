#!/bin/bash
# 60_mosquitto_conf.sh - shardmq reads mosquitto.conf as mosquitto 2.0 does:
# the stock Debian file, include_dir, pid_file, log_dest file (reopened on
# SIGHUP), user, --test-config, --version, every bad line reported at once,
# and settings whose effect a client sees (message_size_limit,
# clientid_prefixes, connection_messages, log_timestamp).
#
# Needs $SHARDMQ_BIN (default build/shardmq), the tools next to it, and
# mosquitto_pub/_sub. Prints "N passed, M failed"; exits non-zero if anything
# failed.
#
# Try it: SHARDMQ_BIN=build/shardmq bash tests/it/60_mosquitto_conf.sh

set -u
BIN=${SHARDMQ_BIN:-build/shardmq}
BINDIR=$(dirname "$BIN")
TMP=$(mktemp -d /tmp/smq-mconf-XXXXXX)
chmod 755 "$TMP"
PASS=0
FAIL=0
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

ok() { echo "ok   60_mosquitto_conf/$1"; PASS=$((PASS + 1)); }
bad() { echo "FAIL 60_mosquitto_conf/$1: $2"; FAIL=$((FAIL + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1" "$3"; fi; }

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# The stock Debian 12 /etc/mosquitto/mosquitto.conf (mosquitto 2.0.11), as
# the package installs it; copied so the test does not depend on the host.
debian_conf() {	# debian_conf CONFD PIDFILE LOGFILE STOREDIR (stock: /var/lib/mosquitto/)
	cat <<EOC
# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file $2

persistence true
persistence_location $4

log_dest file $3

include_dir $1
EOC
}

# --- --version on every program ---------------------------------------------
for p in shardmq shardmq-pub shardmq-sub shardmq-passwd; do
	out=$("$BINDIR/$p" --version 2>&1)
	rc=$?
	check "version_$p" '[ $rc = 0 ] && [[ "$out" =~ ^$p\ version\ [0-9]+\.[0-9]+\.[0-9]+$ ]]' \
		"exit $rc, output '$out'"
done
v1=$("$BIN" --version | awk '{print $3}')
v2=$("$BINDIR/shardmq-passwd" --version | awk '{print $3}')
check version_is_one_string '[ "$v1" = "$v2" ] && [ "$v1" != unversioned ]' "$v1 vs $v2"

# --- the stock Debian file ----------------------------------------------------
mkdir -p "$TMP/conf.d"
P=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$P" > "$TMP/conf.d/local.conf"
mkdir -p "$TMP/var-lib-mosquitto"
debian_conf "$TMP/conf.d" "$TMP/mosquitto.pid" "$TMP/mosquitto.log" "$TMP/var-lib-mosquitto/" \
	> "$TMP/debian.conf"
"$BIN" --test-config -c "$TMP/debian.conf" > "$TMP/tc.out" 2>&1
rc=$?
check test_config_accepts_the_debian_file '[ $rc = 0 ]' "exit $rc: $(cat "$TMP/tc.out")"

# The stock file starts and behaves, its persistence included.
"$BIN" -c "$TMP/debian.conf" --shards 1 > "$TMP/stdio.log" 2>&1 &
PID=$!
if wait_port "$P"; then
	check pid_file_holds_the_pid '[ "$(cat "$TMP/mosquitto.pid" 2>/dev/null)" = "$PID" ]' \
		"pid file: '$(cat "$TMP/mosquitto.pid" 2>&1)', pid $PID"
	mosquitto_sub -p "$P" -t deb/t -C 1 -W 5 > "$TMP/deb.sub" &
	SUB=$!
	sleep 0.3
	mosquitto_pub -p "$P" -t deb/t -m hello -q 1
	wait $SUB
	check include_dir_listener_serves_clients '[ "$(cat "$TMP/deb.sub")" = hello ]' \
		"subscriber got '$(cat "$TMP/deb.sub")'"
	check persistence_location_holds_the_store '[ -f "$TMP/var-lib-mosquitto/shardmq.db/shard-0/data.mdb" ]' \
		"$(ls -R "$TMP/var-lib-mosquitto" 2>&1 | head -c 300)"
	check log_dest_file_gets_the_log 'grep -q "shardmq listening on 127.0.0.1:$P" "$TMP/mosquitto.log"' \
		"log file: $(head -c 300 "$TMP/mosquitto.log" 2>&1)"
	check log_dest_file_replaces_stderr '! grep -q "shardmq listening" "$TMP/stdio.log"' \
		"stderr still has the log: $(head -c 300 "$TMP/stdio.log")"
	# logrotate: move the file away, SIGHUP, the broker writes a new one
	mv "$TMP/mosquitto.log" "$TMP/mosquitto.log.1"
	kill -HUP $PID
	for _ in $(seq 40); do grep -q reloaded "$TMP/mosquitto.log" 2>/dev/null && break; sleep 0.05; done
	check sighup_reopens_the_log_file 'grep -q "reloaded" "$TMP/mosquitto.log" && ! grep -q reloaded "$TMP/mosquitto.log.1"' \
		"new log: $(cat "$TMP/mosquitto.log" 2>&1 | head -c 300)"
	kill -TERM $PID
	wait $PID
	rc=$?
	check clean_stop_removes_the_pid_file '[ $rc = 0 ] && [ ! -e "$TMP/mosquitto.pid" ]' \
		"exit $rc, pid file $(ls "$TMP/mosquitto.pid" 2>&1)"
else
	bad debian_file_without_persistence_starts "$(tail -5 "$TMP/stdio.log")"
	kill -9 $PID 2>/dev/null
fi

# --- every bad line at once, include_dir order, --test-config -----------------
mkdir -p "$TMP/bad.d"
printf 'max_qos 7\n' > "$TMP/bad.d/b.conf"
printf 'bridge_cafile /ca.pem\n' > "$TMP/bad.d/A.conf"
printf 'pot 1\nlistener 1883\nauth_plugin /x.so\nconnection br\nsys_interval -1\ninclude_dir %s\nmemory_limit 1000\n' \
	"$TMP/bad.d" > "$TMP/bad.conf"
"$BIN" --test-config -c "$TMP/bad.conf" > "$TMP/out" 2> "$TMP/err"
rc=$?
want="shardmq: $TMP/bad.conf:1: unknown key 'pot'
shardmq: $TMP/bad.conf:3: auth_plugin: plugins are not supported
shardmq: $TMP/bad.conf:4: connection: bridges are not supported yet
shardmq: $TMP/bad.conf:5: sys_interval: expected a number 0..2147483647, got '-1'
shardmq: $TMP/bad.d/A.conf:1: bridge_cafile: bridges are not supported yet
shardmq: $TMP/bad.d/b.conf:1: max_qos: expected a number 0..2, got '7'
shardmq: $TMP/bad.conf:7: memory_limit: not supported: shardmq has no heap limit; only 0 (no limit) is accepted"
check every_bad_line_reported_at_once_in_include_order '[ $rc = 1 ] && [ "$(cat "$TMP/err")" = "$want" ]' \
	"exit $rc, stderr:
$(cat "$TMP/err")"

# --test-config never binds: a port in use is no problem for it
P=$(free_port)
"$BIN" -p "$P" --shards 1 > "$TMP/holder.log" 2>&1 &
HOLD=$!
wait_port "$P"
printf 'port %s\npersistent_client_expiration 2m\nmax_queued_messages 0\n' "$P" > "$TMP/good.conf"
"$BIN" --test-config -c "$TMP/good.conf" > "$TMP/out" 2>&1
rc=$?
check test_config_checks_without_binding '[ $rc = 0 ] && grep -q "configuration is good" "$TMP/out"' \
	"exit $rc: $(cat "$TMP/out")"
kill $HOLD; wait $HOLD
printf 'password_file %s/nope\n' "$TMP" > "$TMP/pw.conf"
"$BIN" --test-config -c "$TMP/pw.conf" > "$TMP/out" 2>&1
rc=$?
check test_config_reads_the_password_file '[ $rc = 1 ] && grep -q "nope" "$TMP/out"' \
	"exit $rc: $(cat "$TMP/out")"

# --- settings a client notices --------------------------------------------------
start() {	# start NAME CONFIG-TEXT: a broker on a free port; sets PORT and BPID
	PORT=$(free_port)
	printf 'listener %s 127.0.0.1\nallow_anonymous true\n%s\n' "$PORT" "$2" > "$TMP/$1.conf"
	"$BIN" -c "$TMP/$1.conf" --shards 2 > "$TMP/$1.log" 2>&1 &
	BPID=$!
	wait_port "$PORT" || { bad "$1" "did not start: $(tail -3 "$TMP/$1.log")"; return 1; }
}
stop() { kill -TERM $BPID; wait $BPID; }

if start size 'message_size_limit 10'; then
	mosquitto_sub -p "$PORT" -t sz/# -C 1 -W 5 -v > "$TMP/size.sub" &
	SUB=$!
	sleep 0.3
	mosquitto_pub -p "$PORT" -t sz/big -m 01234567890123456789 -q 1
	prc=$?
	mosquitto_pub -p "$PORT" -t sz/small -m small -q 1
	wait $SUB
	check message_size_limit_drops_larger_payloads '[ $prc = 0 ] && [ "$(cat "$TMP/size.sub")" = "sz/small small" ]' \
		"publisher exit $prc, subscriber got '$(cat "$TMP/size.sub")'"
	stop
fi

if start prefix 'clientid_prefixes secure-'; then
	mosquitto_pub -p "$PORT" -i mqtt -t p -m x > "$TMP/prefix.out" 2>&1
	rc1=$?
	mosquitto_pub -p "$PORT" -i secure-1 -t p -m x > /dev/null 2>&1
	rc2=$?
	check clientid_prefixes_refuses_other_ids '[ $rc1 != 0 ] && grep -qi "not authori" "$TMP/prefix.out" && [ $rc2 = 0 ]' \
		"exit $rc1/$rc2: $(cat "$TMP/prefix.out")"
	stop
fi

if start quiet 'connection_messages false
log_timestamp false
log_dest stdout'; then
	mosquitto_pub -p "$PORT" -i quiet-client -t q -m x
	stop
	check connection_messages_false_hides_connects '! grep -q "quiet-client" "$TMP/quiet.log" && grep -q "^notice: shardmq listening" "$TMP/quiet.log"' \
		"$(head -c 400 "$TMP/quiet.log")"
fi

if start fmt 'log_timestamp_format %Y/%m/%d-%H:%M:%S
log_type error
log_type notice
log_type subscribe'; then
	mosquitto_sub -p "$PORT" -i fmt-sub -t fmt/t -C 1 -W 1 > /dev/null 2>&1
	stop
	check log_timestamp_format_and_log_type_subscribe 'grep -Eq "^[0-9]{4}/[0-9]{2}/[0-9]{2}-[0-9:]{8} notice: shardmq listening" "$TMP/fmt.log" && grep -q "subscribe: client .fmt-sub. subscribed to .fmt/t." "$TMP/fmt.log"' \
		"$(head -c 600 "$TMP/fmt.log")"
fi

if [ "$(id -u)" = 0 ] && getent passwd nobody > /dev/null; then
	if start user 'user nobody'; then
		# the port opens before the privileges go: wait for the log line
		for _ in $(seq 40); do grep -q "running as user nobody" "$TMP/user.log" && break; sleep 0.05; done
		uid=$(awk '/^Uid:/ {print $2 "," $3}' /proc/$BPID/status)
		mosquitto_sub -p "$PORT" -t u/t -C 1 -W 5 > "$TMP/user.sub" &
		SUB=$!
		sleep 0.3
		mosquitto_pub -p "$PORT" -t u/t -m dropped -q 1
		wait $SUB
		check user_drops_root_after_binding '[ "$uid" = "65534,65534" ] && [ "$(cat "$TMP/user.sub")" = dropped ] && grep -q "running as user nobody" "$TMP/user.log"' \
			"uid '$uid', subscriber '$(cat "$TMP/user.sub")', log: $(head -c 300 "$TMP/user.log")"
		stop
	fi
	printf 'user no-such-user-here\n' > "$TMP/nouser.conf"
	timeout 5 "$BIN" -c "$TMP/nouser.conf" -p "$(free_port)" --shards 1 > "$TMP/out" 2>&1
	rc=$?
	check unknown_user_stops_start_up '[ $rc = 1 ] && grep -q "no-such-user-here: no such user" "$TMP/out"' \
		"exit $rc: $(cat "$TMP/out")"
else
	echo "skip 60_mosquitto_conf/user_*: not root"
fi

echo "$PASS passed, $FAIL failed"
[ $FAIL = 0 ]
