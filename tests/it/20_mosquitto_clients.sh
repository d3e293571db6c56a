#!/bin/bash
# 20 mosquitto clients: the broker against the stock mosquitto_pub / mosquitto_sub tools
# (Debian's mosquitto-clients): QoS 0/1/2 with -V mqttv31 and mqttv311, retained messages, wills
# set with mosquitto_sub --will-*, persistent sessions, multi-line and binary payloads.
#
# Every test starts its own broker (BROKER=shardmq: once with --shards 1 and once with
# --shards 4; BROKER=mosquitto: once), prints "ok NAME" or "FAIL NAME: reason", and the script
# ends with "N passed, M failed" and exits 0 iff M is 0. Arguments are name substrings to run.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BROKER=${BROKER:-shardmq}
SHARDMQ_BIN=${SHARDMQ_BIN:-${BUILD:-build}/shardmq}
case $SHARDMQ_BIN in /*) ;; *) [ -e "$SHARDMQ_BIN" ] || SHARDMQ_BIN="$ROOT/$SHARDMQ_BIN" ;; esac
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/smq-it20.XXXXXX)
PASS=0 FAIL=0 SKIP=0
BPID="" PORT="" REASON="" BRC=""
BGPIDS=()

cleanup() {
	local p
	for p in "${BGPIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -n "$BPID" ] && kill -9 "$BPID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

accepts() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_broker SHARDS: on a free port, retried if the port was taken meanwhile.
start_broker() {
	local shards=$1 try i
	for try in 1 2 3 4; do
		PORT=$(free_port)
		if [ "$BROKER" = mosquitto ]; then
			printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' \
				"$PORT" > "$TMP/mosquitto.conf"
			/usr/sbin/mosquitto -c "$TMP/mosquitto.conf" >> "$TMP/broker.log" 2>&1 &
		else
			"$SHARDMQ_BIN" -p "$PORT" --bind 127.0.0.1 --shards "$shards" \
				>> "$TMP/broker.log" 2>&1 &
		fi
		BPID=$!
		for i in $(seq 60); do
			kill -0 "$BPID" 2>/dev/null || break
			accepts "$PORT" && return 0
			sleep 0.05
		done
		stop_broker
	done
	return 1
}

# stop_broker: SIGTERM, SIGKILL after 3 s; the exit status goes to BRC (128+N: signal N).
stop_broker() {
	kill -TERM "$BPID" 2>/dev/null
	wait_exit "$BPID"
	kill -KILL "$BPID" 2>/dev/null
	wait "$BPID" 2>/dev/null
	BRC=$?
	BPID=""
}

# sub_bg OUT ARGS...: mosquitto_sub in the background, output lines "MSG|topic|qos|retain|payload"
# in OUT; returns once the broker acknowledged the subscription.
sub_bg() {
	local out=$1 i
	shift
	# line-buffered, or the SUBACK line would sit in stdio's buffer until exit
	stdbuf -oL mosquitto_sub -p "$PORT" -d -F 'MSG|%t|%q|%r|%p' "$@" > "$out" 2>&1 &
	LASTPID=$!
	disown "$LASTPID"           # no "Killed" notices when the test kills it
	BGPIDS+=("$LASTPID")
	for i in $(seq 60); do
		grep -q "received SUBACK" "$out" && return 0
		sleep 0.05
	done
	REASON="mosquitto_sub $* got no SUBACK: $(tr '\n' ' ' < "$out")"
	return 1
}

# msgs OUT: the message lines of a sub_bg output file.
msgs() {
	grep '^MSG|' "$1"
}

# wait_exit PID: until the process is gone, at most 3 s.
wait_exit() {
	local i
	for i in $(seq 60); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
}

# expect_msgs OUT WANT [sort]: wait for the last mosquitto_sub to exit, then compare its
# messages (sorted first with "sort": no order is promised across topics and publishers).
expect_msgs() {
	local out=$1 want=$2 got
	wait_exit "$LASTPID"
	got=$(msgs "$out")
	if [ "${3:-}" = sort ]; then
		got=$(echo "$got" | LC_ALL=C sort)
		want=$(echo "$want" | LC_ALL=C sort)
	fi
	if [ "$got" != "$want" ]; then
		REASON="got [$(echo "$got" | tr '\n' ' ')] want [$(echo "$want" | tr '\n' ' ')]"
		return 1
	fi
}

pub() {
	mosquitto_pub -p "$PORT" "$@" || { REASON="mosquitto_pub $* failed"; return 1; }
}

# ---------------------------------------------------------------------------------------------

t_qos_levels_v311() { qos_levels mqttv311; }
t_qos_levels_v31() { qos_levels mqttv31; }
qos_levels() {
	local v=$1 q
	for q in 0 1 2; do
		sub_bg "$TMP/s$q" -V "$v" -q 2 -t "q/$q" -C 1 -W 5 || return 1
		pub -V "$v" -q "$q" -t "q/$q" -m "hello $q" || return 1
		expect_msgs "$TMP/s$q" "MSG|q/$q|$q|0|hello $q" || return 1
	done
}

t_qos_downgraded_to_subscription() {
	sub_bg "$TMP/s" -q 1 -t "d/#" -C 3 -W 5 || return 1
	pub -q 2 -t d/2 -m two && pub -q 1 -t d/1 -m one && pub -q 0 -t d/0 -m zero || return 1
	expect_msgs "$TMP/s" "$(printf 'MSG|d/2|1|0|two\nMSG|d/1|1|0|one\nMSG|d/0|0|0|zero')" sort
}

t_retained_stored_and_flagged() {
	pub -r -q 1 -t r/a -m kept || return 1
	pub -r -q 0 -t r/b/c -m kept0 || return 1
	sub_bg "$TMP/s" -q 1 -t 'r/#' -C 2 -W 5 || return 1
	expect_msgs "$TMP/s" "$(printf 'MSG|r/a|1|1|kept\nMSG|r/b/c|0|1|kept0')" sort
}

t_retained_replaced_then_deleted() {
	pub -r -q 1 -t rd/a -m one && pub -r -q 1 -t rd/a -m two || return 1
	sub_bg "$TMP/s1" -q 1 -t rd/a -C 1 -W 5 || return 1
	expect_msgs "$TMP/s1" "MSG|rd/a|1|1|two" || return 1
	pub -r -q 1 -t rd/a -n || return 1
	sub_bg "$TMP/s2" -q 1 -t rd/a -W 1 || return 1
	expect_msgs "$TMP/s2" "" || return 1
}

t_retained_only_flag_v31() {
	pub -V mqttv31 -r -q 2 -t ro/x -m rx || return 1
	sub_bg "$TMP/s" -V mqttv31 --retained-only -q 2 -t 'ro/+' -W 2 -C 1 || return 1
	expect_msgs "$TMP/s" "MSG|ro/x|2|1|rx"
}

t_will_from_mosquitto_sub() {
	sub_bg "$TMP/w" -q 1 -t will/t -C 1 -W 5 || return 1
	sub_bg "$TMP/dying" -q 1 -t nothing --will-topic will/t --will-payload bye \
		--will-qos 1 --will-retain || return 1
	kill -9 "$LASTPID"
	LASTPID=${BGPIDS[-2]}
	expect_msgs "$TMP/w" "MSG|will/t|1|0|bye" || return 1
	sub_bg "$TMP/late" -q 1 -t will/t -C 1 -W 5 || return 1
	expect_msgs "$TMP/late" "MSG|will/t|1|1|bye"
}

t_no_will_after_clean_exit() {
	sub_bg "$TMP/w" -q 1 -t will2/t -W 1 || return 1
	local watcher=$LASTPID
	mosquitto_sub -p "$PORT" -t nothing --will-topic will2/t --will-payload bye -E \
		|| { REASON="mosquitto_sub -E failed"; return 1; }
	LASTPID=$watcher
	expect_msgs "$TMP/w" ""
}

t_persistent_session_with_c_flag() {
	local id="it20-$RANDOM$RANDOM"
	mosquitto_sub -p "$PORT" -c -i "$id" -q 1 -t ps/t -E \
		|| { REASON="mosquitto_sub -c -E failed"; return 1; }
	sleep 0.3
	pub -q 1 -t ps/t -m missed || return 1
	mosquitto_sub -p "$PORT" -c -i "$id" -q 1 -t ps/t -C 1 -W 5 -F 'MSG|%t|%q|%r|%p' \
		> "$TMP/s" 2>&1
	local got
	got=$(msgs "$TMP/s")
	[ "$got" = "MSG|ps/t|1|0|missed" ] || { REASON="got [$got]"; return 1; }
}

t_lines_in_order() {
	sub_bg "$TMP/s" -q 1 -t l/t -C 50 -W 5 || return 1
	seq 1 50 | mosquitto_pub -p "$PORT" -q 1 -t l/t -l || { REASON="pub -l failed"; return 1; }
	expect_msgs "$TMP/s" "$(seq 1 50 | sed 's/^/MSG|l\/t|1|0|/')"
}

t_binary_payload_from_file() {
	head -c 200000 /dev/urandom > "$TMP/blob"
	mosquitto_sub -p "$PORT" -q 1 -t b/t -C 1 -W 5 -N > "$TMP/got" 2>"$TMP/err" &
	LASTPID=$!
	disown "$LASTPID"
	BGPIDS+=("$LASTPID")
	sleep 0.5                      # no -d here: it would mix with the binary payload
	pub -q 1 -t b/t -f "$TMP/blob" || return 1
	wait_exit "$LASTPID"
	cmp -s "$TMP/blob" "$TMP/got" || { REASON="payload differs ($(stat -c %s "$TMP/got") bytes)"; return 1; }
}

t_wildcards_and_dollar() {
	sub_bg "$TMP/s" -q 0 -t '#' -t '$app/+' -C 2 -W 5 || return 1
	pub -t '$app/x' -m dollar && pub -t app/x -m plain || return 1
	expect_msgs "$TMP/s" "$(printf 'MSG|$app/x|0|0|dollar\nMSG|app/x|0|0|plain')" sort
}

# ---------------------------------------------------------------------------------------------

run() {
	local name=$1 shards=$2 label rc
	label="20_mosquitto_clients/${name#t_}"
	[ "$BROKER" = mosquitto ] && label="$label (mosquitto)" || label="$label (shards=$shards)"
	: > "$TMP/broker.log"
	REASON=""
	if ! start_broker "$shards"; then
		echo "FAIL $label: broker did not start"; sed 's/^/    /' "$TMP/broker.log" | tail -40
		FAIL=$((FAIL + 1)); return
	fi
	"$name" > "$TMP/reason" 2>&1
	rc=$?
	[ -z "$REASON" ] && REASON=$(tail -n 1 "$TMP/reason")
	for p in "${BGPIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	BGPIDS=()
	if ! kill -0 "$BPID" 2>/dev/null && [ $rc = 0 ]; then
		rc=1 REASON="broker died during the test"
	fi
	stop_broker
	if [ $rc = 0 ] && [ "$BROKER" != mosquitto ] && [ "$BRC" != 0 ]; then
		rc=1 REASON="broker exit status $BRC on SIGTERM, want 0"
	fi
	if [ $rc = 0 ]; then
		echo "ok $label"; PASS=$((PASS + 1))
	else
		echo "FAIL $label: $REASON"; sed 's/^/    /' "$TMP/broker.log" | tail -40
		FAIL=$((FAIL + 1))
	fi
	rm -f "$TMP"/s* "$TMP"/w "$TMP"/dying "$TMP"/late "$TMP"/got "$TMP"/blob "$TMP"/err
}

main() {
	local tests shards_list name n
	tests=$(declare -F | awk '{print $3}' | grep '^t_')
	if [ "$BROKER" = mosquitto ]; then shards_list="1"; else shards_list="1 4"; fi
	if [ "$BROKER" != mosquitto ] && [ ! -e "$SHARDMQ_BIN" ] && [ ! -e "$ROOT/cmd/shardmq.c" ]; then
		for name in $tests; do
			echo "skip 20_mosquitto_clients/${name#t_}: $SHARDMQ_BIN not built (no cmd/shardmq.c yet)"
			SKIP=$((SKIP + 1))
		done
	else
		for name in $tests; do
			if [ $# -gt 0 ]; then
				local hit=0 f
				for f in "$@"; do case $name in *"$f"*) hit=1 ;; esac; done
				[ $hit = 1 ] || continue
			fi
			for n in $shards_list; do run "$name" "$n"; done
		done
	fi
	if [ $SKIP -gt 0 ]; then
		echo "$PASS passed, $FAIL failed, $SKIP skipped"
	else
		echo "$PASS passed, $FAIL failed"
	fi
	[ $FAIL = 0 ]
}

main "$@"
