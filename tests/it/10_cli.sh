#!/bin/bash
# 10_cli.sh - the shardmq program itself: flags, config errors, start-up
# messages, pinning, clean exit on SIGINT/SIGTERM.
#
# Needs $SHARDMQ_BIN (default build/shardmq) and mosquitto_pub/_sub.
# Prints "N passed, M failed"; exits non-zero if anything failed.
#
# Try it: SHARDMQ_BIN=build/shardmq bash tests/it/10_cli.sh

set -u
BIN=${SHARDMQ_BIN:-build/shardmq}
TMP=$(mktemp -d /tmp/smq-cli-XXXXXX)
PASS=0
FAIL=0
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

ok() { echo "ok   10_cli/$1"; PASS=$((PASS + 1)); }
bad() { echo "FAIL 10_cli/$1: $2"; FAIL=$((FAIL + 1)); }

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

# expect_refusal NAME WANT-IN-STDERR ARGS...: shardmq must exit 1 at once
# and say WANT on stderr.
expect_refusal() {
	local name=$1 want=$2 rc
	shift 2
	timeout 5 "$BIN" "$@" > "$TMP/out" 2> "$TMP/err"
	rc=$?
	if [ $rc != 1 ]; then
		bad "$name" "exit $rc, want 1 (stderr: $(head -c 300 "$TMP/err"))"
	elif ! grep -qF -- "$want" "$TMP/err"; then
		bad "$name" "stderr lacks '$want': $(head -c 300 "$TMP/err")"
	else
		ok "$name"
	fi
}

# --- bad input refuses to start, naming file, line and problem -------------
printf '# comment\n\nport 1883\npot 1884\n' > "$TMP/typo.conf"
expect_refusal config_unknown_key_names_file_and_line "$TMP/typo.conf:4: unknown key 'pot'" \
	-c "$TMP/typo.conf"
printf 'max_inflight_messages abc\n' > "$TMP/val.conf"
expect_refusal config_bad_value_names_key "$TMP/val.conf:1: max_inflight_messages" \
	-c "$TMP/val.conf"
expect_refusal config_missing_file "$TMP/nope.conf" -c "$TMP/nope.conf"
expect_refusal unknown_flag "usage: shardmq" --frobnicate
expect_refusal bad_shards_flag "shards" --shards many
# Something else on the port: refuse (SO_REUSEPORT must not hide it), and a
# second shardmq on the same port must refuse too.
/usr/bin/python3 -c "import socket,time,sys; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()
print(s.getsockname()[1]); sys.stdout.flush(); time.sleep(4)" > "$TMP/port" &
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.05; done
expect_refusal port_in_use_says_so "Address already in use" -p "$(cat "$TMP/port")" --shards 1
P=$(free_port)
"$BIN" -p "$P" --shards 2 > "$TMP/first.log" 2>&1 &
FIRST=$!
wait_port "$P"
expect_refusal second_broker_same_port_refused "Address already in use" -p "$P" --shards 2
kill $FIRST; wait $FIRST

# --- --help ----------------------------------------------------------------
if "$BIN" --help | grep -q -- "--shards"; then ok help_lists_flags; else bad help_lists_flags "no --shards in --help"; fi
if "$BIN" --help | grep -q -- "--test-config" && "$BIN" --help | grep -q -- "--version"; then
	ok help_lists_test_config_and_version
else
	bad help_lists_test_config_and_version "$("$BIN" --help | head -5)"
fi
# every bad line of a file in one run, each with its file and line
printf 'pot 1\nport 1884\nmax_qos 9\n' > "$TMP/two.conf"
expect_refusal config_reports_every_bad_line "$TMP/two.conf:3: max_qos" -c "$TMP/two.conf"
grep -qF "$TMP/two.conf:1: unknown key 'pot'" "$TMP/err" && ok config_first_bad_line_too ||
	bad config_first_bad_line_too "$(cat "$TMP/err")"

# --- start-up, pinning, a round trip, clean stop ----------------------------
run_broker() {	# run_broker NAME SIGNAL ARGS...: start, pub/sub round trip, signal, exit 0
	local name=$1 sig=$2 port pid rc got
	shift 2
	port=$(free_port)
	"$BIN" -p "$port" "$@" > "$TMP/$name.log" 2>&1 &
	pid=$!
	if ! wait_port "$port"; then
		bad "$name" "broker did not listen: $(tail -3 "$TMP/$name.log")"
		kill -9 $pid 2>/dev/null
		return
	fi
	mosquitto_sub -p "$port" -t cli/t -C 1 -W 5 > "$TMP/$name.sub" &
	sleep 0.3
	mosquitto_pub -p "$port" -t cli/t -m "hello $name" -q 1
	wait $! 2>/dev/null
	got=$(cat "$TMP/$name.sub")
	kill -"$sig" $pid
	for _ in $(seq 60); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
	if kill -0 $pid 2>/dev/null; then
		bad "$name" "still running 3 s after SIG$sig"
		kill -9 $pid
		return
	fi
	wait $pid
	rc=$?
	if [ "$got" != "hello $name" ]; then
		bad "$name" "subscriber got '$got'"
	elif [ $rc != 0 ]; then
		bad "$name" "exit status $rc after SIG$sig, want 0"
	elif ! grep -q "shardmq stopped" "$TMP/$name.log"; then
		bad "$name" "no 'shardmq stopped' in the log"
	else
		ok "$name"
	fi
}

run_broker sigterm_after_round_trip TERM --shards 2
run_broker sigint_after_round_trip INT --shards 1
run_broker pinned_shards_work TERM --shards 2 --pin -v
if grep -q "pinned to CPU" "$TMP/pinned_shards_work.log"; then ok pin_is_logged; else bad pin_is_logged "no 'pinned to CPU' line"; fi
if grep -q "anonymous clients are allowed" "$TMP/sigint_after_round_trip.log"; then
	ok default_says_anonymous_allowed
else
	bad default_says_anonymous_allowed "log does not say anonymous access is on"
fi
printf 'shards 2\npin_cpus 0,0\nlog_level info\n' > "$TMP/pin.conf"
run_broker config_file_pin_list TERM -c "$TMP/pin.conf"
if grep -q "shard 1 pinned to CPU 0" "$TMP/config_file_pin_list.log"; then
	ok pin_list_from_config
else
	bad pin_list_from_config "$(grep -i pin "$TMP/config_file_pin_list.log" | head -3)"
fi

# --- what was dropped is counted and reported at shutdown -----------------
P=$(free_port)
"$BIN" -p "$P" --shards 1 > "$TMP/totals.log" 2>&1 &
TP=$!
if wait_port "$P"; then
	mosquitto_pub -p "$P" -t '$SYS/fake' -m x -q 1
	kill -TERM $TP
	wait $TP
	if grep -q 'shard 0 totals: .* 1 sys' "$TMP/totals.log"; then
		ok drops_are_counted_in_shutdown_totals
	else
		bad drops_are_counted_in_shutdown_totals "$(grep totals "$TMP/totals.log")"
	fi
else
	bad drops_are_counted_in_shutdown_totals "broker did not listen"
	kill -9 $TP
fi

# A reload never leaves a changed setting silently unapplied.
P=$(free_port)
printf 'max_qos 2\n' > "$TMP/r.conf"
"$BIN" -c "$TMP/r.conf" -p "$P" > "$TMP/r.log" 2>&1 &
RP=$!
wait_port "$P"
printf 'max_qos 1\n' > "$TMP/r.conf"
kill -HUP $RP
for _ in $(seq 40); do grep -q 'apply only after a restart' "$TMP/r.log" && break; sleep 0.05; done
kill -TERM $RP
wait $RP
if grep -q 'apply only after a restart: max_qos' "$TMP/r.log"; then ok reload_names_settings_that_need_a_restart;
else bad reload_names_settings_that_need_a_restart "$(grep -i reload "$TMP/r.log")"; fi

# Fail closed, and say so: a listener without a password file refuses all.
P=$(free_port)
printf 'listener %s 127.0.0.1\n' "$P" > "$TMP/closed.conf"
"$BIN" -c "$TMP/closed.conf" > "$TMP/closed.log" 2>&1 &
CP=$!
wait_port "$P"
mosquitto_pub -p "$P" -u someone -P x -t t -m x 2> /dev/null
prc=$?
kill -TERM $CP
wait $CP
if [ $prc != 0 ] && grep -q 'every CONNECT will be refused' "$TMP/closed.log"; then
	ok no_password_file_refuses_everyone_and_warns_at_start
else
	bad no_password_file_refuses_everyone_and_warns_at_start "pub exit $prc; log: $(head -c 300 "$TMP/closed.log")"
fi

# -d: the command returns once the broker listens, with its start-up status;
# the daemon writes its own pid to pid_file and serves clients.
P=$(free_port)
printf 'pid_file %s/d.pid\nlog_dest file %s/d.log\n' "$TMP" "$TMP" > "$TMP/d.conf"
if timeout 10 "$BIN" -d -c "$TMP/d.conf" -p "$P" && wait_port "$P" &&
	mosquitto_pub -p "$P" -t d -m x && [ -s "$TMP/d.pid" ] &&
	[ "$(ps -o ppid= -p "$(cat "$TMP/d.pid")" | tr -d ' ')" = 1 ]; then
	ok daemon_mode_detaches_and_serves
else
	bad daemon_mode_detaches_and_serves "rc or pid file wrong: $(cat "$TMP/d.log" 2>&1 | tail -2)"
fi
timeout 10 "$BIN" -d -c "$TMP/d.conf" -p "$P" 2> "$TMP/d2.err"
rc=$?
if [ $rc = 1 ] && grep -q 'Address already in use' "$TMP/d2.err"; then
	ok daemon_start_failure_reaches_the_terminal
else
	bad daemon_start_failure_reaches_the_terminal "exit $rc: $(cat "$TMP/d2.err")"
fi
[ -s "$TMP/d.pid" ] && kill -TERM "$(cat "$TMP/d.pid")"
for _ in $(seq 50); do [ -e "$TMP/d.pid" ] || break; sleep 0.1; done
if [ ! -e "$TMP/d.pid" ]; then ok daemon_stops_on_sigterm_and_removes_pid_file;
else bad daemon_stops_on_sigterm_and_removes_pid_file "pid file still there"; fi

echo "$PASS passed, $FAIL failed"
[ $FAIL = 0 ]
