#!/bin/bash
# ws_bench.sh - MQTT over WebSocket beside plain TCP (and wss beside TLS), for shardmq and for
# mosquitto's websockets listener, with perf/loadgen (--ws speaks net/ws.h's client side).
#
#	bash perf/ws_bench.sh [BUILD_DIR]     (default: build; needs BUILD/shardmq and
#	                                       BUILD/perf/loadgen, mosquitto, openssl)
#
# Each line is one loadgen run of DURATION seconds (default 3) after a 1 s warm-up, against a
# broker started for the whole script on loopback with SHARDS shards (default 1). Scenarios:
# 1to1 QoS 0 64 B as fast as possible (framing cost per small message) and at a fixed
# 100,000 msgs/s (the same work for every broker: compare the broker CPU column), 1to1 QoS 0
# 16 KiB (per byte), fanout QoS 1 to 20 subscribers 256 B. Environment: SHARDS, DURATION,
# THREADS (loadgen threads, default 1), SCENARIOS ('|'-separated loadgen argument lists).
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
B=${1:-build}
LG=$B/perf/loadgen
SMQ=$B/shardmq
SHARDS=${SHARDS:-1}
DURATION=${DURATION:-3}
THREADS=${THREADS:-1}
DIR=$(mktemp -d /tmp/smq-ws-bench-XXXXXX)
trap 'stop_broker shardmq; stop_broker mosquitto; rm -rf $DIR' EXIT
for f in $LG $SMQ; do [ -x $f ] || { echo "ws_bench: $f is not built"; exit 1; }; done

for v in P_TCP P_WS P_TLS P_WSS M_TCP M_WS; do	# shardmq's 4 listeners, mosquitto's 2
	PORT[$v]=$(free_port) || { echo "ws_bench: no free port"; exit 1; }
	printf -v "$v" %s "${PORT[$v]}"
done
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $DIR/k.pem \
	-out $DIR/c.pem -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
	2>/dev/null

cat > $DIR/smq.conf <<CONF
listener $P_TCP 127.0.0.1
listener $P_WS 127.0.0.1
protocol websockets
listener $P_TLS 127.0.0.1
certfile $DIR/c.pem
keyfile $DIR/k.pem
listener $P_WSS 127.0.0.1
protocol websockets
certfile $DIR/c.pem
keyfile $DIR/k.pem
allow_anonymous true
max_connections -1
CONF
cat > $DIR/mosq.conf <<CONF
listener $M_TCP 127.0.0.1
listener $M_WS 127.0.0.1
protocol websockets
allow_anonymous true
set_tcp_nodelay true
user root
CONF
start_cmd shardmq $DIR/smq.log $P_TCP $P_WS $P_TLS $P_WSS -- \
	$SMQ -c $DIR/smq.conf --shards $SHARDS || exit 1
start_cmd mosquitto $DIR/mosq.log $M_TCP $M_WS -- mosquitto -c $DIR/mosq.conf || exit 1
SPID=${PID[shardmq]}
MPID=${PID[mosquitto]}

run() {	# label broker-pid args...
	local label=$1 pid=$2
	shift 2
	printf '%-34s ' "$label"
	timeout $((DURATION + 30)) $LG --duration $DURATION --warmup 1 --drain 3 --threads $THREADS \
		--broker-pid $pid "$@" 2>&1 |
		awk '/^ *delivered / { d = $2 } /cpu/ { c = $0; sub(/.*broker /, "", c); sub(/ .*/, "", c) }
		     /latency/ { l = $3 " " $4 } END { printf "%10s msgs/s delivered  p50 %-10s broker cpu %s\n", d, l, c }'
}

SCENARIOS=${SCENARIOS:-"--preset 1to1 --qos 0 --size 64|--preset 1to1 --qos 0 --size 64 --rate 100000|--preset 1to1 --qos 0 --size 16384|--preset fanout --qos 1 --size 256"}
IFS='|' read -r -a SCS <<< "$SCENARIOS"
for sc in "${SCS[@]}"; do
	echo "== $sc"
	run "shardmq tcp" $SPID $sc --port $P_TCP
	run "shardmq ws" $SPID $sc --port $P_WS --ws
	run "shardmq tls" $SPID $sc --port $P_TLS --cafile $DIR/c.pem --insecure
	run "shardmq wss" $SPID $sc --port $P_WSS --cafile $DIR/c.pem --insecure --ws
	run "mosquitto tcp" $MPID $sc --port $M_TCP
	run "mosquitto ws" $MPID $sc --port $M_WS --ws
done
