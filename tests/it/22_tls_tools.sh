#!/bin/bash
# 22_tls_tools.sh - shardmq-pub and shardmq-sub over TLS, against mosquitto.
#
# Certificates are made here with openssl in a temporary directory (nothing
# is committed): a CA, a server certificate for localhost/127.0.0.1, one
# for another host name, a client certificate, and a second CA. mosquitto
# runs with four TLS listeners on free loopback ports:
#   A  server cert, clients need no certificate
#   B  require_certificate true
#   C  tls_version tlsv1.3 only
#   D  a certificate for "otherhost" (host name check)
# and one plaintext listener P. Checks: a message crosses with and without
# client certificates (and between the shardmq tools and mosquitto's own),
# and each failure (wrong CA, no client cert, version, host name, plaintext
# port, bad files and flags) exits with the documented status and a clear
# message. The broker is mosquitto so that this does not depend on
# shardmq's own TLS listener. Prints "N passed, M failed"; skipped (0
# passed) without mosquitto or openssl.
#
# Try it: make BUILD=build-x build-x/shardmq-pub build-x/shardmq-sub &&
#	BUILD=build-x bash tests/it/22_tls_tools.sh

set -u
BUILD=${BUILD:-build}
PUB=$BUILD/shardmq-pub
SUB=$BUILD/shardmq-sub
MOSQ=/usr/sbin/mosquitto

for b in "$PUB" "$SUB"; do
	[ -x "$b" ] || { echo "22_tls_tools: $b not built"; exit 1; }
done
if [ ! -x "$MOSQ" ] || ! command -v openssl >/dev/null; then
	echo "22_tls_tools: mosquitto or openssl missing: skipped"
	echo "0 passed, 0 failed"
	exit 0
fi

TMP=$(mktemp -d /tmp/smq-tls-XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
ko() { failed=$((failed + 1)); echo "FAIL $1"; shift; printf '     %s\n' "$@"; }

# expect NAME WANT GOT
expect() {
	if [ "$2" == "$3" ]; then ok "$1"; else ko "$1" "want: $(printf %q "$2")" "got:  $(printf %q "$3")"; fi
}

# expect_fail NAME STATUS TEXT CMD...: CMD exits STATUS saying TEXT on stderr.
expect_fail() {
	local name=$1 want=$2 text=$3 rc
	shift 3
	"$@" > "$TMP/out" 2> "$TMP/err"; rc=$?
	if [ "$rc" = "$want" ] && grep -qF -- "$text" "$TMP/err"; then ok "$name"; else
		ko "$name" "want: status $want and '$text'" "got:  status $rc: $(cat "$TMP/err")"; fi
}

# ---- certificates ---------------------------------------------------------

C=$TMP/certs
mkdir -p "$C"
NEWKEY=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
mkca() { openssl req -x509 "${NEWKEY[@]}" -keyout "$C/$1.key" -out "$C/$1.pem" -days 2 \
	-subj "/CN=$2" 2>/dev/null; }
# leaf NAME CN CA SAN
leaf() {
	openssl req -new "${NEWKEY[@]}" -keyout "$C/$1.key" -out "$C/$1.csr" -subj "/CN=$2" \
		2>/dev/null || return 1
	printf 'subjectAltName=%s\n' "$4" > "$C/$1.ext"
	openssl x509 -req -in "$C/$1.csr" -CA "$C/$3.pem" -CAkey "$C/$3.key" -CAcreateserial \
		-out "$C/$1.pem" -days 2 -extfile "$C/$1.ext" 2>/dev/null
}
mkca ca "smq it CA" && mkca other "smq other CA" &&
	leaf server localhost ca "DNS:localhost,IP:127.0.0.1" &&
	leaf wrongname otherhost ca "DNS:otherhost" &&
	leaf client alice ca "DNS:alice.invalid" ||
	{ echo "22_tls_tools: openssl could not make the certificates"; exit 1; }
# mosquitto started as root reads its files as user mosquitto: these
# throwaway test keys may be world-readable
chmod 755 "$TMP" "$C"
chmod 644 "$C"/*

# ---- the broker -----------------------------------------------------------

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# tls_listener PORT CERT [extra line]
tls_listener() {
	printf 'listener %s 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n%s\n' \
		"$1" "$C/ca.pem" "$C/$2.pem" "$C/$2.key" "${3:-}"
}

start_broker() {
	local attempt i pid
	for attempt in 1 2 3 4 5; do
		PA=$(free_port) PB=$(free_port) PC=$(free_port) PD=$(free_port) PP=$(free_port)
		{
			printf 'allow_anonymous true\npersistence false\n'
			tls_listener "$PA" server
			tls_listener "$PB" server "require_certificate true"
			tls_listener "$PC" server "tls_version tlsv1.3"
			tls_listener "$PD" wrongname
			printf 'listener %s 127.0.0.1\n' "$PP"
		} > "$TMP/mosquitto.conf"
		"$MOSQ" -c "$TMP/mosquitto.conf" > "$TMP/mosquitto.log" 2>&1 &
		pid=$!
		for i in $(seq 100); do
			if (exec 3<>"/dev/tcp/127.0.0.1/$PP") 2>/dev/null &&
				(exec 3<>"/dev/tcp/127.0.0.1/$PD") 2>/dev/null; then
				PIDS+=("$pid")
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	echo "22_tls_tools: mosquitto did not start:"
	cat "$TMP/mosquitto.log"
	exit 1
}
start_broker

CA=(--cafile "$C/ca.pem")
CERT=(--cert "$C/client.pem" --key "$C/client.key")

# Publish (args after the pid) every 0.1 s until subscriber PID exits, so
# the test never depends on how long the SUBSCRIBE takes.
pub_until_exit() {
	local pid=$1 i
	shift
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		"$@" >/dev/null 2>&1
		sleep 0.1
	done
}

# crossing NAME SUB-ARGS -- PUB-ARGS: a message published with PUB-ARGS
# reaches a subscriber started with SUB-ARGS (each list ends the command).
crossing() {
	local name=$1 sub rc subargs=() topic="t/$RANDOM"
	shift
	while [ "$1" != -- ]; do subargs+=("$1"); shift; done
	shift
	"${subargs[@]}" -t "$topic" -C 1 -W 10 > "$TMP/got" 2> "$TMP/suberr" &
	sub=$!
	pub_until_exit $sub "$@" -t "$topic" -m "over tls"
	wait $sub; rc=$?
	expect "$name" "over tls 0" "$(cat "$TMP/got") $rc"
	[ $rc = 0 ] || cat "$TMP/suberr"
}

# ---- a message crosses ----------------------------------------------------

crossing "pub/sub over TLS, server verified, no client certificate" \
	"$SUB" -h localhost -p "$PA" "${CA[@]}" -- "$PUB" -h localhost -p "$PA" "${CA[@]}"
crossing "pub/sub with client certificates on a require_certificate listener" \
	"$SUB" -h localhost -p "$PB" "${CA[@]}" "${CERT[@]}" -- \
	"$PUB" -h localhost -p "$PB" "${CA[@]}" "${CERT[@]}"
crossing "pub/sub with --tls-version tlsv1.2, -V 5, to 127.0.0.1" \
	"$SUB" -h 127.0.0.1 -p "$PA" -V 5 "${CA[@]}" --tls-version tlsv1.2 -- \
	"$PUB" -h 127.0.0.1 -p "$PA" -V 5 "${CA[@]}" --tls-version tlsv1.2
crossing "pub/sub with --capath" \
	"$SUB" -h localhost -p "$PA" --capath "$C" -- "$PUB" -h localhost -p "$PA" --capath "$C"
crossing "pub/sub with --insecure to a certificate for another host" \
	"$SUB" -h localhost -p "$PD" "${CA[@]}" --insecure -- \
	"$PUB" -h localhost -p "$PD" "${CA[@]}" --insecure
if command -v mosquitto_pub >/dev/null; then
	crossing "mosquitto_pub with a client certificate to shardmq-sub" \
		"$SUB" -h localhost -p "$PB" "${CA[@]}" "${CERT[@]}" -- \
		mosquitto_pub -h localhost -p "$PB" "${CA[@]}" "${CERT[@]}"
	crossing "shardmq-pub to mosquitto_sub over TLS" \
		mosquitto_sub -h localhost -p "$PA" "${CA[@]}" -- \
		"$PUB" -h localhost -p "$PA" "${CA[@]}"
fi

# a large message (several TLS records) arrives whole
head -c 300000 /dev/urandom > "$TMP/big"
"$SUB" -h localhost -p "$PA" "${CA[@]}" -t big -N -C 1 -W 10 > "$TMP/bigout" &
sub=$!
pub_until_exit $sub "$PUB" -h localhost -p "$PA" "${CA[@]}" -t big -q 1 -f "$TMP/big"
wait $sub
if cmp -s "$TMP/big" "$TMP/bigout"; then ok "a 300 kB message crosses TLS intact"; else
	ko "a 300 kB message crosses TLS intact" "got $(stat -c %s "$TMP/bigout") bytes"; fi

# ---- failures say why -----------------------------------------------------

expect_fail "wrong CA: status 2, certificate verify failed" 2 \
	"connect: TLS: certificate verify failed: unknown issuer" \
	"$PUB" -h localhost -p "$PA" --cafile "$C/other.pem" -t x -m y
expect_fail "no client certificate on require_certificate: status 2, alert" 2 \
	"connect: TLS: peer sent alert: certificate required" \
	"$PUB" -h localhost -p "$PB" "${CA[@]}" -t x -m y
expect_fail "client certificate from another CA: status 2, alert" 2 \
	"connect: TLS: peer sent alert:" \
	"$PUB" -h localhost -p "$PB" "${CA[@]}" --cert "$C/other.pem" --key "$C/other.key" -t x -m y
# --tls-version is the lowest version (as mosquitto_pub's): tlsv1.2 still
# speaks 1.3 to a 1.3-only listener.
"$PUB" -h localhost -p "$PC" "${CA[@]}" --tls-version tlsv1.2 -t x -m y > "$TMP/out" 2>&1
expect "--tls-version tlsv1.2 is a minimum: it reaches a TLS 1.3-only listener" 0 "$?"
expect_fail "host name mismatch without --insecure: status 2" 2 \
	"connect: TLS: certificate verify failed: host name mismatch" \
	"$PUB" -h localhost -p "$PD" "${CA[@]}" -t x -m y
expect_fail "an IP address not in the certificate: status 2" 2 \
	"connect: TLS: certificate verify failed: host name mismatch" \
	"$PUB" -h 127.0.0.1 -p "$PD" "${CA[@]}" -t x -m y
expect_fail "TLS to a plaintext port: status 2, not a TLS port" 2 \
	"during the TLS handshake (not a TLS port?)" \
	"$SUB" -h localhost -p "$PP" "${CA[@]}" -t x
expect_fail "unreadable --cafile: status 1 naming the file" 1 \
	"TLS: cafile $TMP/none.pem: cannot read: No such file or directory" \
	"$PUB" -p "$PA" --cafile "$TMP/none.pem" -t x -m y
expect_fail "--key that does not match --cert: status 1" 1 \
	"TLS: keyfile $C/server.key does not match certfile $C/client.pem" \
	"$PUB" -p "$PA" "${CA[@]}" --cert "$C/client.pem" --key "$C/server.key" -t x -m y
expect_fail "--cert without --key: status 1" 1 "both --cert and --key are needed" \
	"$PUB" -p "$PA" "${CA[@]}" --cert "$C/client.pem" -t x -m y
expect_fail "--insecure without a CA: status 1" 1 "need --cafile, --capath or --tls-use-os-certs" \
	"$SUB" -p "$PA" --insecure -t x
expect_fail "--tls-version tlsv1.1: status 1" 1 "unsupported TLS version 'tlsv1.1'" \
	"$SUB" -p "$PA" "${CA[@]}" --tls-version tlsv1.1 -t x

# --tls-use-os-certs loads the system store; our test CA is not in it
if [ -d /etc/ssl/certs ]; then
	expect_fail "--tls-use-os-certs does not trust the test CA" 2 "unknown issuer" \
		"$PUB" -h localhost -p "$PA" --tls-use-os-certs -t x -m y
fi

# without -p, TLS means port 8883: checked only when 8883 is free to listen on
if /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 8883))' 2>/dev/null; then
	tls_listener 8883 server > "$TMP/m8883.conf"
	printf 'allow_anonymous true\n' >> "$TMP/m8883.conf"
	"$MOSQ" -c "$TMP/m8883.conf" > "$TMP/m8883.log" 2>&1 &
	PIDS+=($!)
	for i in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/8883) 2>/dev/null && break
		sleep 0.05
	done
	"$PUB" -h localhost "${CA[@]}" -t x -m y; rc=$?
	expect "--cafile without -p connects to port 8883" 0 $rc
else
	echo "skip port 8883 is in use: the default TLS port is not checked"
fi

echo "$passed passed, $failed failed"
[ $failed = 0 ]
