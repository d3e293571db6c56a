#!/bin/bash
# 24_unix_socket.sh - Unix socket listeners ("listener 0 /path", mosquitto's form).
#
# A broker with a TCP and a Unix socket listener: clients on either reach each other
# (mosquitto_sub/_pub --unix and shardmq-pub --unix), a stale socket file left by a broker
# that died is replaced, a socket another broker accepts on is refused, a file that is not a
# socket is never removed, the socket file goes away at a clean stop, and a port other than 0
# is a config error. Prints "N passed, M failed"; exits non-zero if anything failed.
#
# Try it: SHARDMQ_BIN=build/shardmq BUILD=build bash tests/it/24_unix_socket.sh

set -u
BUILD=${BUILD:-build}
BIN=${SHARDMQ_BIN:-$BUILD/shardmq}
PUB=$BUILD/shardmq-pub
TMP=$(mktemp -d /tmp/smq-unix-XXXXXX)
PASS=0
FAIL=0
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

ok() { echo "ok   24_unix_socket/$1"; PASS=$((PASS + 1)); }
bad() { echo "FAIL 24_unix_socket/$1: $2"; FAIL=$((FAIL + 1)); }
check() {	# check NAME CONDITION MESSAGE
	if eval "$2"; then ok "$1"; else bad "$1" "$3"; fi
}

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_sock() {
	for _ in $(seq 100); do
		[ -S "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

SOCK=$TMP/mqtt.sock
P=$(free_port)
printf 'listener %s 127.0.0.1\nlistener 0 %s\nallow_anonymous true\n' "$P" "$SOCK" > "$TMP/b.conf"

# A stale socket file, as a broker killed with SIGKILL leaves it.
/usr/bin/python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$SOCK"
check stale_socket_file_is_there '[ -S "$SOCK" ]' "no stale socket made"

"$BIN" -c "$TMP/b.conf" --shards 2 > "$TMP/b.log" 2>&1 &
B=$!
sleep 0.5
check stale_socket_replaced 'kill -0 $B 2>/dev/null && grep -q "unix:$SOCK" "$TMP/b.log"' \
	"$(tail -3 "$TMP/b.log")"

timeout 5 mosquitto_sub --unix "$SOCK" -t 'u/#' -C 3 -v > "$TMP/sub.out" 2> "$TMP/sub.err" &
S=$!
sleep 0.4
"$PUB" --unix "$SOCK" -t u/a -m from-shardmq-pub
mosquitto_pub --unix "$SOCK" -t u/b -m from-mosquitto-pub
mosquitto_pub -p "$P" -t u/c -m from-tcp
wait $S
check clients_on_unix_and_tcp_meet \
	'[ "$(sort "$TMP/sub.out" | tr "\n" ";")" = "u/a from-shardmq-pub;u/b from-mosquitto-pub;u/c from-tcp;" ]' \
	"subscriber got: $(tr '\n' ';' < "$TMP/sub.out") $(cat "$TMP/sub.err")"
check peer_logged_as_unix 'grep -q "connected from unix" "$TMP/b.log"' "$(tail -3 "$TMP/b.log")"

# A second broker on the same socket: refused, the first keeps it.
P2=$(free_port)
printf 'listener %s 127.0.0.1\nlistener 0 %s\nallow_anonymous true\n' "$P2" "$SOCK" > "$TMP/c.conf"
timeout 5 "$BIN" -c "$TMP/c.conf" --shards 1 > "$TMP/c.log" 2>&1
rc=$?
check socket_in_use_refused '[ $rc = 1 ] && grep -q "Address already in use" "$TMP/c.log"' \
	"exit $rc: $(tail -2 "$TMP/c.log")"
check first_broker_keeps_its_socket \
	'timeout 3 mosquitto_pub --unix "$SOCK" -t u/d -m still' "publish over the socket failed"

kill $B
wait $B
check clean_stop_removes_the_socket '[ ! -e "$SOCK" ]' "$(ls -la "$SOCK" 2>&1)"

# Not a socket: never removed, start-up refused.
echo "precious" > "$TMP/file"
printf 'listener 0 %s\nallow_anonymous true\n' "$TMP/file" > "$TMP/d.conf"
timeout 5 "$BIN" -c "$TMP/d.conf" --shards 1 > "$TMP/d.log" 2>&1
rc=$?
check non_socket_file_refused_and_kept \
	'[ $rc = 1 ] && grep -q "not a socket" "$TMP/d.log" && [ "$(cat "$TMP/file")" = precious ]' \
	"exit $rc: $(tail -2 "$TMP/d.log")"

printf 'listener 1883 %s\n' "$SOCK" > "$TMP/e.conf"
out=$("$BIN" --test-config -c "$TMP/e.conf" 2>&1)
rc=$?
check unix_listener_needs_port_0 '[ $rc = 1 ] && [[ "$out" == *"listener 0 $SOCK"* ]]' \
	"exit $rc: $out"

echo "$PASS passed, $FAIL failed"
[ $FAIL = 0 ]
