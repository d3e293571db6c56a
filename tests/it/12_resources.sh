#!/bin/bash
# 12_resources.sh - running out of file descriptors costs new connections
# only: the broker neither spins nor floods its log, keeps serving the
# clients it has, and accepts again once descriptors are free.
#
# Needs $SHARDMQ_BIN and mosquitto_pub/_sub. Prints "N passed, M failed".
#
# Try it: SHARDMQ_BIN=build/shardmq bash tests/it/12_resources.sh

set -u
BIN=${SHARDMQ_BIN:-build/shardmq}
TMP=$(mktemp -d /tmp/smq-res-XXXXXX)
PASS=0
FAIL=0
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

ok() { echo "ok   12_resources/$1"; PASS=$((PASS + 1)); }
bad() { echo "FAIL 12_resources/$1: $2"; FAIL=$((FAIL + 1)); }

PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# CPU seconds (user + system) the process has used so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# A soft and hard limit of 48 descriptors: the rings, listeners and a few
# clients fit; a flood of 150 connections does not.
(ulimit -n 48; exec "$BIN" -p "$PORT" --bind 127.0.0.1 --shards 2) > "$TMP/log" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q "shardmq listening on" "$TMP/log" && break; sleep 0.05; done

mosquitto_sub -p "$PORT" -t res/t -C 1 -W 10 > "$TMP/sub" 2>&1 &
SUB=$!
sleep 0.3

/usr/bin/python3 - "$PORT" > "$TMP/flood" 2>&1 <<'PY' &
import socket, sys, time
port, socks = int(sys.argv[1]), []
for _ in range(150):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    socks.append(s)
time.sleep(4)
print(len(socks))
PY
FLOOD=$!
sleep 0.5
T0=$(cpu_ticks "$PID")
sleep 3
T1=$(cpu_ticks "$PID")
TICKS=$((T1 - T0))
# 3 s at 100 ticks/s: a spinning shard would use ~300 ticks.
if [ "$TICKS" -le 30 ]; then ok "no_busy_loop_while_out_of_fds ($TICKS ticks in 3 s)";
else bad no_busy_loop_while_out_of_fds "$TICKS CPU ticks in 3 s"; fi
LINES=$(grep -c 'Too many open files' "$TMP/log")
if grep -q 'Too many open files' "$TMP/log" && [ "$LINES" -le 4 ]; then
	ok "fd_exhaustion_logged_rate_limited ($LINES lines)"
else
	bad fd_exhaustion_logged_rate_limited "$LINES lines about it"
fi
wait $FLOOD

# The flood is gone: a new client gets in and the old subscriber is served.
if mosquitto_pub -p "$PORT" -t res/t -m after -q 1 2> "$TMP/pub"; then ok accepts_again_after_fds_free;
else bad accepts_again_after_fds_free "$(cat "$TMP/pub")"; fi
wait $SUB
if [ "$(cat "$TMP/sub")" = after ]; then ok existing_client_kept_serving;
else bad existing_client_kept_serving "subscriber got '$(cat "$TMP/sub")'"; fi
if grep -q 'open files limit' "$TMP/log"; then ok warns_that_max_connections_exceeds_the_limit;
else bad warns_that_max_connections_exceeds_the_limit "no warning in the log"; fi

kill -TERM "$PID"
wait "$PID"
RC=$?
if [ "$RC" = 0 ]; then ok clean_exit; else bad clean_exit "exit $RC"; fi

# Not root, default 8 MiB locked-memory limit, more shards than full-size
# rings fit in it: the broker shrinks its rings and starts (it refused to
# start above ~5 shards before). Needs root to switch to nobody; the binary
# must be readable by nobody.
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null &&
	setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$BIN"; then
	P2=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	(ulimit -l 8192; exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
		"$BIN" -p "$P2" --bind 127.0.0.1 --shards 16) > "$TMP/ml.log" 2>&1 &
	MP=$!
	for _ in $(seq 100); do grep -q "shardmq listening on" "$TMP/ml.log" && break; sleep 0.05; done
	if mosquitto_pub -p "$P2" -t ml -m x 2> /dev/null && grep -q 'rings of' "$TMP/ml.log"; then
		ok non_root_16_shards_fit_the_default_memlock_limit
	else
		bad non_root_16_shards_fit_the_default_memlock_limit "$(grep -v 'open files' "$TMP/ml.log" | head -3)"
	fi
	kill -TERM $MP 2> /dev/null
	wait $MP
else
	echo "skip 12_resources/non_root_16_shards_fit_the_default_memlock_limit (needs root and setpriv)"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
