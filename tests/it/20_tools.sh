#!/bin/bash
# 20_tools.sh - shardmq-pub and shardmq-sub against mosquitto and shardmq.
#
# Runs the same checks against each broker on a free loopback port: what the
# tools print and the exit codes they promise in --help: 0 success, 1 bad
# arguments, 2 connection failure, 3 broker refusal, 27 -W timeout. Every
# check's name starts with the broker it ran against, "[mosquitto]" or
# "[shardmq]". Binaries come from $BUILD (default: build), the broker from
# $SHARDMQ_BIN (default: $BUILD/shardmq). Prints "N passed, M failed" and
# exits non-zero if anything failed. Without mosquitto its half is skipped.
#
# Try it: make BUILD=build-x all && BUILD=build-x bash tests/it/20_tools.sh

set -u
BUILD=${BUILD:-build}
PUB=$BUILD/shardmq-pub
SUB=$BUILD/shardmq-sub
SHARDMQ_BIN=${SHARDMQ_BIN:-$BUILD/shardmq}
MOSQ=/usr/sbin/mosquitto

for b in "$PUB" "$SUB" "$SHARDMQ_BIN"; do
	[ -x "$b" ] || { echo "20_tools: $b not built"; exit 1; }
done

TMP=$(mktemp -d /tmp/smq-tools-XXXXXX)
PIDS=()
stop_brokers() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	PIDS=()
}
cleanup() {
	stop_brokers
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# launch NAME CONF_LINE: start $BROKER on $PORT in the background (its pid
# in $!), with CONF_LINE (a "key value" line both brokers know, or "") in
# its config file.
launch() {
	local name=$BROKER-$1
	if [ "$BROKER" = mosquitto ]; then
		printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n%s\n' \
			"$PORT" "$2" > "$TMP/$name.conf"
		"$MOSQ" -c "$TMP/$name.conf" > "$TMP/$name.log" 2>&1 &
	else
		printf '%s\n' "$2" > "$TMP/$name.conf"
		"$SHARDMQ_BIN" -p "$PORT" --shards 2 -c "$TMP/$name.conf" > "$TMP/$name.log" 2>&1 &
	fi
}

# start_broker NAME [conf line]: sets $PORT; retries on a port clash.
start_broker() {
	local i attempt pid
	for attempt in 1 2 3 4 5; do
		PORT=$(free_port)
		launch "$1" "${2:-}"
		pid=$!
		for i in $(seq 100); do
			if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
				PIDS+=("$pid")
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	echo "20_tools: $BROKER did not start:"
	cat "$TMP/$BROKER-$1.log"
	exit 1
}

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   [$BROKER] $1"; }
ko() { failed=$((failed + 1)); echo "FAIL [$BROKER] $1"; shift; printf '     %s\n' "$@"; }

# expect NAME WANT GOT
expect() {
	if [ "$2" == "$3" ]; then ok "$1"; else ko "$1" "want: $(printf %q "$2")" "got:  $(printf %q "$3")"; fi
}

# Publish (args after the pid) every 0.1 s until subscriber PID exits, so
# the test never depends on how long the SUBSCRIBE takes.
pub_until_exit() {
	local pid=$1 i
	shift
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		"$PUB" -p "$PORT" "$@" >/dev/null 2>&1
		sleep 0.1
	done
}

# Publish a message to TOPIC until FILE is not empty: a subscriber writing
# to FILE has shown that it is connected and subscribed. FILE must be new
# or emptied by the caller, not by the subscriber's own redirection: that
# happens in the child, maybe too late.
ping_until_printed() {
	local file=$1 topic=$2 i
	for i in $(seq 100); do
		[ -s "$file" ] && return 0
		"$PUB" "${P[@]}" -t "$topic" -m ping
		sleep 0.1
	done
}

# Every check, against the broker named by $BROKER.
run_checks() {
	local sub dying out rc v

	# a directory per broker: no file of the other run can be mistaken
	# for a sign of life (see ping_until_printed)
	W=$TMP/$BROKER
	mkdir -p "$W"
	start_broker main
	P=(-p "$PORT")

	# -C 1 with -m: one message, then exit 0
	"$SUB" "${P[@]}" -t 'one/#' -C 1 -W 10 > "$W/out" 2>&1 &
	sub=$!
	pub_until_exit $sub -t one/x -m hello
	wait $sub; rc=$?
	expect "sub -C 1 exits 0" 0 $rc
	expect "sub prints the payload of pub -m" "hello" "$(cat "$W/out")"

	# -v prints the topic
	"$SUB" "${P[@]}" -t 'verb/+' -v -C 1 -W 10 > "$W/out" &
	sub=$!
	pub_until_exit $sub -t verb/t1 -m "a b"
	wait $sub
	expect "sub -v prints 'topic payload'" "verb/t1 a b" "$(cat "$W/out")"

	# -W: nothing arrives, exit 27 and say so
	"$SUB" "${P[@]}" -t quiet -W 1 > "$W/out" 2> "$W/err"; rc=$?
	expect "sub -W timeout exits 27" 27 $rc
	expect "sub -W timeout says so" "Timed out" "$(cat "$W/err")"

	# -f: a file with several lines and bytes arrives unchanged (-N: no newline)
	printf 'line 1\nline 2\n\ttab\x01\xff end' > "$W/payload"
	"$SUB" "${P[@]}" -t file -N -C 1 -W 10 > "$W/out" &
	sub=$!
	pub_until_exit $sub -t file -f "$W/payload"
	wait $sub
	if cmp -s "$W/payload" "$W/out"; then ok "pub -f sends the file as it is"; else
		ko "pub -f sends the file as it is" "$(od -c "$W/out" | head -3)"; fi

	# -l: one message per line, the last one without a newline too. A
	# persistent session subscribed first (-W 1 ends that run with 27)
	# holds them, so nothing depends on timing.
	"$SUB" "${P[@]}" -c -i lines-1 -q 1 -t lines -W 1 > /dev/null 2>&1
	printf 'first\nsecond\nthird' | "$PUB" "${P[@]}" -t lines -q 1 -l; rc=$?
	expect "pub -l exits 0" 0 $rc
	out=$("$SUB" "${P[@]}" -c -i lines-1 -q 1 -t lines -C 3 -W 5)
	expect "pub -l sends each line" "$(printf 'first\nsecond\nthird')" "$out"

	# -n: an empty payload
	"$SUB" "${P[@]}" -t null -v -C 1 -W 10 > "$W/out" &
	sub=$!
	pub_until_exit $sub -t null -n
	wait $sub
	expect "pub -n sends an empty payload" "null " "$(cat "$W/out")"

	# -r: a later subscriber gets the retained message at once
	"$PUB" "${P[@]}" -t keep/1 -m kept -r -q 1; rc=$?
	expect "pub -r -q 1 exits 0" 0 $rc
	out=$("$SUB" "${P[@]}" -t 'keep/#' -C 1 -W 5); rc=$?
	expect "sub gets the retained message" "kept 0" "$out $rc"

	# -q 2 end to end, in each protocol version
	for v in 31 311 5; do
		"$SUB" "${P[@]}" -V $v -t "q2/$v" -q 2 -C 1 -W 10 > "$W/out" &
		sub=$!
		pub_until_exit $sub -V $v -t "q2/$v" -q 2 -m "exactly once $v"
		wait $sub; rc=$?
		expect "pub/sub -q 2 with -V $v" "exactly once $v 0" "$(cat "$W/out") $rc"
	done

	# --will-*: a subscriber killed without DISCONNECT leaves its
	# (retained) will. It is killed once it has shown, by receiving a
	# message, that it is connected and subscribed.
	: > "$W/dying"
	"$SUB" "${P[@]}" -t alive/dying --will-topic will/dead --will-payload bye --will-qos 1 \
		--will-retain > "$W/dying" &
	dying=$!
	ping_until_printed "$W/dying" alive/dying
	{ kill -9 $dying; wait $dying; } 2>/dev/null
	out=$("$SUB" "${P[@]}" -t 'will/#' -v -C 1 -W 5)
	expect "--will-topic/--will-payload/--will-retain published on a crash" "will/dead bye" "$out"

	# -c: a persistent session receives what was published while it was away
	"$SUB" "${P[@]}" -c -i persist-1 -q 1 -t 'away/#' -W 1 > /dev/null 2>&1
	"$PUB" "${P[@]}" -t away/1 -q 1 -m "queued"
	out=$("$SUB" "${P[@]}" -c -i persist-1 -q 1 -t 'away/#' -C 1 -W 5); rc=$?
	expect "sub -c receives messages queued while offline" "queued 0" "$out $rc"

	# SIGINT ends sub cleanly (sent once it is surely running: it has printed)
	: > "$W/sig"
	"$SUB" "${P[@]}" -t sig > "$W/sig" &
	sub=$!
	ping_until_printed "$W/sig" sig
	kill -INT $sub
	wait $sub; rc=$?
	expect "sub exits 0 on SIGINT" 0 $rc

	# exit codes for errors
	"$PUB" "${P[@]}" -t 'bad/#' -m x 2>/dev/null; expect "pub wildcard topic exits 1" 1 $?
	"$PUB" "${P[@]}" -t t 2>/dev/null; expect "pub without a message exits 1" 1 $?
	"$PUB" "${P[@]}" -t t -m a -n 2>/dev/null; expect "pub with two messages exits 1" 1 $?
	"$PUB" "${P[@]}" -t t -m a -q 3 2>/dev/null; expect "pub -q 3 exits 1" 1 $?
	"$PUB" "${P[@]}" -t t -f "$W/no-such-file" 2>/dev/null
	expect "pub -f missing file exits 1" 1 $?
	"$SUB" "${P[@]}" 2>/dev/null; expect "sub without -t exits 1" 1 $?
	"$SUB" "${P[@]}" -t 'a/#/b' 2>/dev/null; expect "sub invalid filter exits 1" 1 $?
	"$SUB" "${P[@]}" -t a -c 2>/dev/null; expect "sub -c without -i exits 1" 1 $?
	"$PUB" -p "$(free_port)" -t t -m x 2>/dev/null; expect "pub to a closed port exits 2" 2 $?
	"$SUB" -p "$(free_port)" -t t -W 1 2>/dev/null; expect "sub to a closed port exits 2" 2 $?
	"$PUB" -h no-such-host.invalid -t t -m x 2>/dev/null
	expect "pub to an unknown host exits 2" 2 $?
	"$PUB" --help > "$W/out"; rc=$?
	expect "pub --help exits 0 and documents the exit codes" "0 1" \
		"$rc $(grep -c 'Exit status' "$W/out")"

	start_broker closed "allow_anonymous false"
	"$PUB" -p "$PORT" -t t -m x 2>"$W/err"; rc=$?
	expect "pub refused by the broker exits 3" 3 $rc
	"$SUB" -p "$PORT" -V 5 -t t -W 2 2>/dev/null; expect "sub refused by the broker exits 3" 3 $?

	# max_qos 1: a QoS 2 subscription is granted QoS 1 and still receives;
	# a 5.0 QoS 2 publish is refused before it is sent, because the
	# CONNACK announces Maximum QoS 1 [MQTT-3.2.2-11]
	start_broker maxqos "max_qos 1"
	P=(-p "$PORT")
	"$SUB" "${P[@]}" -V 5 -t mq -q 2 -C 1 -W 10 > "$W/out" &
	sub=$!
	pub_until_exit $sub -V 5 -t mq -q 1 -m granted
	wait $sub; rc=$?
	expect "sub -q 2 receives when max_qos 1 grants QoS 1" "granted 0" "$(cat "$W/out") $rc"
	"$PUB" "${P[@]}" -V 5 -t mq -q 2 -m x 2>/dev/null
	expect "pub -V 5 -q 2 beyond max_qos 1 exits 3" 3 $?

	stop_brokers
}

if [ -x "$MOSQ" ]; then
	BROKER=mosquitto run_checks
else
	echo "20_tools: mosquitto half skipped, $MOSQ is not installed"
fi
BROKER=shardmq run_checks

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
