#!/bin/bash
# 23_tools_flags.sh - the mosquitto_pub/sub/rr flags of shardmq-pub, -sub, -rr.
#
# Runs the same checks against mosquitto and shardmq on a free loopback
# port, each check's name prefixed "[mosquitto]" or "[shardmq]". Where
# mosquitto's own clients print something comparable, the shardmq tool's
# output is compared with theirs for the same message: -F spec by spec
# (mosquitto_sub and shardmq-sub subscribed side by side), %j / %J and
# --pretty, -d lines, -I client ids. The rest checks behaviour a user sees:
# --repeat, -R, -E, -T, -U, --retained-only, --remove-retained, -D
# properties reaching the subscriber (and refused when they do not fit
# their packet), -L, -A, --unix (mosquitto listens on a Unix socket; for
# shardmq, which does not yet, a small Python relay forwards it to TCP),
# --quiet, --version, unknown hosts, shardmq-rr, and shardmq-sub
# reconnecting when the broker is killed and started again on its port.
#
# Binaries come from $BUILD (default: build), the broker from $SHARDMQ_BIN
# (default: $BUILD/shardmq). Prints "N passed, M failed" and exits non-zero
# if anything failed. Without mosquitto its half is skipped, and so are the
# comparisons with mosquitto's clients.
#
# Try it: make BUILD=build-x all && BUILD=build-x bash tests/it/23_tools_flags.sh

set -u
BUILD=${BUILD:-build}
PUB=$BUILD/shardmq-pub
SUB=$BUILD/shardmq-sub
RR=$BUILD/shardmq-rr
SHARDMQ_BIN=${SHARDMQ_BIN:-$BUILD/shardmq}
MOSQ=/usr/sbin/mosquitto
MPUB=$(command -v mosquitto_pub)
MSUB=$(command -v mosquitto_sub)
PY=/usr/bin/python3

for b in "$PUB" "$SUB" "$RR" "$SHARDMQ_BIN"; do
	[ -x "$b" ] || { echo "23_tools_flags: $b not built"; exit 1; }
done

TMP=$(mktemp -d /tmp/smq-flags-XXXXXX)
chmod 755 "$TMP"	# mosquitto drops to its own user: it must reach its socket
PIDS=()
stop_brokers() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	PIDS=()
}
cleanup() {
	stop_brokers
	jobs -p | xargs -r kill 2>/dev/null
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# launch NAME: start $BROKER on $PORT in the background (pid in $!); the
# mosquitto one also listens on the Unix socket $W/mqtt.sock.
launch() {
	local name=$BROKER-$1
	if [ "$BROKER" = mosquitto ]; then
		printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' \
			"$PORT" > "$TMP/$name.conf"
		printf 'listener 0 %s\n' "$W/mqtt.sock" >> "$TMP/$name.conf"
		"$MOSQ" -c "$TMP/$name.conf" > "$TMP/$name.log" 2>&1 &
	else
		: > "$TMP/$name.conf"
		"$SHARDMQ_BIN" -p "$PORT" --shards 2 -c "$TMP/$name.conf" > "$TMP/$name.log" 2>&1 &
	fi
}

# wait_port PID: until $PORT accepts (0) or PID died (1).
wait_port() {
	local i
	for i in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
		kill -0 "$1" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# start_broker NAME: sets $PORT and $BPID; retries on a port clash.
start_broker() {
	local attempt
	for attempt in 1 2 3 4 5; do
		PORT=$(free_port)
		launch "$1"
		BPID=$!
		if wait_port $BPID; then
			PIDS+=("$BPID")
			return 0
		fi
		kill "$BPID" 2>/dev/null
		wait "$BPID" 2>/dev/null
	done
	echo "23_tools_flags: $BROKER did not start:"
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

# expect_re NAME REGEX GOT
expect_re() {
	if [[ "$3" =~ $2 ]]; then ok "$1"; else ko "$1" "want: /$2/" "got:  $(printf %q "$3")"; fi
}

# Publish (args after the pid) every 0.1 s until process PID exits, so
# that no check depends on how long a SUBSCRIBE takes.
pub_until_exit() {
	local pid=$1 i
	shift
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		"$PUB" -p "$PORT" "$@" >/dev/null 2>&1
		sleep 0.1
	done
}

# until_subscribed FILE TOPIC: publish "ping" to TOPIC until FILE (a
# subscriber's output, empty or new) is not empty: it is subscribed.
until_subscribed() {
	local i
	for i in $(seq 100); do
		[ -s "$1" ] && return 0
		"$PUB" -p "$PORT" -t "$2" -m ping >/dev/null 2>&1
		sleep 0.1
	done
}

# ---- -F, spec by spec, against mosquitto_sub ------------------------------

# The parts of a message that do not depend on the time it arrived.
SPECS=(%t %p %q %r %l %m %x %X %P %C %D %R %F %S %A %% %5t %-5t %.2t %05l %-4l %08x
	%3.1C '\t|\\\\' @@)

check_format_specs() {
	local fmt="" s i n a b args=(-p "$PORT" -V 5 -q 1 -c -t fmt/msg)
	for s in "${SPECS[@]}"; do fmt="$fmt$s\\n"; done
	# persistent sessions hold the message for both, so nothing hangs on timing
	"$MSUB" "${args[@]}" -i fmt-m -D subscribe subscription-identifier 7 -E
	"$SUB" "${args[@]}" -i fmt-s -D subscribe subscription-identifier 7 -E
	"$PUB" -p "$PORT" -V 5 -q 1 -t fmt/msg -m 'hello "world"' \
		-D publish user-property k1 v1 -D publish user-property k2 'v 2' \
		-D publish content-type text/x -D publish correlation-data corr-1 \
		-D publish response-topic back/here -D publish payload-format-indicator 1
	"$MSUB" "${args[@]}" -i fmt-m -C 1 -W 5 -F "$fmt" > "$W/fm" 2>&1
	"$SUB" "${args[@]}" -i fmt-s -C 1 -W 5 -F "$fmt" > "$W/fs" 2>&1
	n=${#SPECS[@]}
	for i in "${!SPECS[@]}"; do
		a=$(sed -n "$((i + 1))p" "$W/fm")
		b=$(sed -n "$((i + 1))p" "$W/fs")
		expect "sub -F '${SPECS[$i]}' prints what mosquitto_sub prints" "$a" "$b"
	done
}

# Time parts: the same shape as mosquitto_sub's (not the same instant).
check_format_times() {
	local fmt='%I|%U|@Y-@m-@d @H:@M:@S|@s|@N|\e|\0|\a\r\v'
	"$SUB" -p "$PORT" -t 'ftime' -C 1 -W 10 -F "$fmt" > "$W/ft" &
	local sub=$!
	pub_until_exit $sub -t ftime -m x
	wait $sub
	expect_re "sub -F %I %U @Y-@m-@d @H:@M:@S @s @N have their shapes" \
		'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{4}\|[0-9]{10}\.[0-9]{9}\|[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\|[0-9]{10}\|[0-9]{9}\|' \
		"$(head -c 90 "$W/ft" | tr -d '\0')"
	expect "sub -F escapes \\e \\0 \\a \\r \\v" "1b 00 07 0d 0b 0a" \
		"$(cut -d'|' -f6- "$W/ft" | tr -d '|' | od -An -tx1 | xargs)"
	"$SUB" -p "$PORT" -t x -F '%i' 2>"$W/err"; local rc=$?
	expect "sub -F with an unknown spec exits 1 and names it" "1 1" \
		"$rc $(grep -c "invalid format specifier 'i'" "$W/err")"
}

# %j, %J, --pretty: as mosquitto_sub, but for the time stamp's digits.
check_json() {
	local f p args=(-p "$PORT" -V 5 -q 1 -c -t json/msg)
	for f in %j %J; do
		for p in "" --pretty; do
			"$MSUB" "${args[@]}" -i json-m -E
			"$SUB" "${args[@]}" -i json-s -E
			"$PUB" -p "$PORT" -V 5 -q 1 -t json/msg -D publish user-property who me \
				-m '{"a": [1, {"b": null}], "c": "\u00e9\/", "d": {}, "e": -1.5e3}'
			"$MSUB" "${args[@]}" -i json-m -C 1 -W 5 -F "$f" $p > "$W/jm" 2>/dev/null
			"$SUB" "${args[@]}" -i json-s -C 1 -W 5 -F "$f" $p > "$W/js" 2>/dev/null
			sed -i 's/[0-9]\{4\}-[0-9-]*T[0-9:.]*Z[+-][0-9]*/TIME/' "$W/jm" "$W/js"
			expect "sub -F $f $p prints what mosquitto_sub prints" \
				"$(cat "$W/jm")" "$(cat "$W/js")"
		done
	done
	expect "the JSON time stamp is mosquitto's shape" 1 "$(grep -c '"tst":.*"TIME"' "$W/js")"
}

# -d: the lines mosquitto_pub and mosquitto_sub print (they print them on
# stdout, shardmq's tools on stderr).
check_debug() {
	local m s
	m=$("$MPUB" -p "$PORT" -i dbg -q 1 -t dbg/t -m hello -d 2>/dev/null)
	s=$("$PUB" -p "$PORT" -i dbg -q 1 -t dbg/t -m hello -d 2>&1 >/dev/null)
	expect "pub -d -q 1 prints what mosquitto_pub -d prints" "$m" "$s"
	m=$("$MPUB" -p "$PORT" -i dbg -q 2 -r -t dbg/t -n -d 2>/dev/null)
	s=$("$PUB" -p "$PORT" -i dbg -q 2 -r -t dbg/t -n -d 2>&1 >/dev/null)
	expect "pub -d -q 2 -r prints what mosquitto_pub -d prints" "$m" "$s"
	# shardmq-sub reads what arrived together: an UNSUBACK that came with
	# the SUBACK is logged too (mosquitto_sub exits before reading it)
	m=$("$MSUB" -p "$PORT" -i dbg -q 1 -t dbg/a -t dbg/b -U dbg/b -E -d 2>/dev/null)
	s=$("$SUB" -p "$PORT" -i dbg -q 1 -t dbg/a -t dbg/b -U dbg/b -E -d 2>&1 >/dev/null |
		grep -v 'received UNSUBACK')
	expect "sub -d -U -E prints what mosquitto_sub -d prints" "$m" "$s"
	"$PUB" -p "$PORT" -t dbg/t -n -r -q 1
}

# -I: the prefix and the process id, as mosquitto_sub's.
check_id_prefix() {
	local m s
	m=$("$MSUB" -p "$PORT" -I pfx -t a -E -d 2>/dev/null | head -1)
	s=$("$SUB" -p "$PORT" -I pfx -t a -E -d 2>&1 >/dev/null | head -1)
	expect "sub -I pfx names the client as mosquitto_sub does" \
		"${m//[0-9]/}" "${s//[0-9]/}"
	expect_re "sub -I pfx: the process id follows the prefix" '^Client pfx[0-9]+ sending CONNECT$' "$s"
}

# ---- pub ------------------------------------------------------------------

check_pub() {
	local out rc t0 t1
	"$SUB" -p "$PORT" -c -i rep-1 -q 1 -t rep -E
	"$PUB" -p "$PORT" -t rep -q 1 -m again --repeat 3
	out=$("$SUB" -p "$PORT" -c -i rep-1 -q 1 -t rep -C 3 -W 5)
	expect "pub --repeat 3 publishes three times" "$(printf 'again\nagain\nagain')" "$out"
	t0=$(date +%s%N)
	"$PUB" -p "$PORT" -t rep2 -m x --repeat 3 --repeat-delay 0.3; rc=$?
	t1=$(date +%s%N)
	expect "pub --repeat-delay 0.3 waits between the three (>= 0.6 s)" "0 1" \
		"$rc $(( (t1 - t0) >= 600000000 ))"
	"$PUB" -p "$PORT" -t rep -m x --repeat 0 2>/dev/null
	expect "pub --repeat 0 exits 1" 1 $?
	"$PUB" -p "$PORT" -t rep -m x -M 5 -q 1; expect "pub -M 5 -q 1 exits 0" 0 $?
	"$PUB" -p "$PORT" -t rep -m x -M 0 2>/dev/null; expect "pub -M 0 exits 1" 1 $?
	"$PUB" -p "$PORT" -t rep -m x --nodelay; expect "pub --nodelay exits 0" 0 $?
}

# ---- sub filters ----------------------------------------------------------

check_sub_filters() {
	local out rc
	# -R: a retained message is not printed, a live one is
	"$PUB" -p "$PORT" -t stale/1 -m old -r -q 1
	: > "$W/out"
	"$SUB" -p "$PORT" -t 'stale/#' -R -C 1 -W 10 > "$W/out" &
	local sub=$!
	pub_until_exit $sub -t stale/1 -m live
	wait $sub
	expect "sub -R skips the retained message" "live" "$(cat "$W/out")"
	"$PUB" -p "$PORT" -t stale/1 -n -r -q 1

	# -T: filtered-out topics are not printed
	"$SUB" -p "$PORT" -t 'flt/#' -T flt/skip -T 'flt/no/#' -C 1 -W 10 > "$W/out" &
	sub=$!
	for i in $(seq 100); do
		kill -0 $sub 2>/dev/null || break
		"$PUB" -p "$PORT" -t flt/skip -m skipped
		"$PUB" -p "$PORT" -t flt/no/x -m skipped
		"$PUB" -p "$PORT" -t flt/keep -m kept
		sleep 0.1
	done
	wait $sub
	expect "sub -T drops the topics it matches" "kept" "$(cat "$W/out")"

	# -E: exits once subscribed, status 0
	timeout 5 "$SUB" -p "$PORT" -t e/1 -E; rc=$?
	expect "sub -E exits 0 once subscribed" 0 $rc

	# -U: a persistent session forgets the filter
	"$SUB" -p "$PORT" -c -i unsub-1 -q 1 -t 'uns/#' -E
	"$SUB" -p "$PORT" -c -i unsub-1 -q 1 -U 'uns/#' -E; rc=$?
	expect "sub -U alone (with -E) exits 0" 0 $rc
	"$PUB" -p "$PORT" -t uns/1 -q 1 -m "not for me"
	out=$("$SUB" -p "$PORT" -c -i unsub-1 -q 1 -t other -W 1 2>/dev/null); rc=$?
	expect "sub -U: nothing is queued for the filter any more" "27 " "$rc $out"
	"$SUB" -p "$PORT" -c -i unsub-2 -q 1 -t 'uns/#' -E
	"$PUB" -p "$PORT" -t uns/1 -q 1 -m "for me"
	out=$("$SUB" -p "$PORT" -c -i unsub-2 -q 1 -t other -C 1 -W 5 2>/dev/null)
	expect "without -U the same session gets it (the check above can fail)" "for me" "$out"

	# --retained-only: the retained ones, then exit 0 at the first live one
	"$PUB" -p "$PORT" -t ro/1 -m r1 -r -q 1
	"$PUB" -p "$PORT" -t ro/2 -m r2 -r -q 1
	"$SUB" -p "$PORT" -t 'ro/#' --retained-only -W 10 > "$W/out" &
	sub=$!
	sleep 0.5
	pub_until_exit $sub -t ro/3 -m live
	wait $sub; rc=$?
	expect "sub --retained-only prints the retained and exits 0 at a live one" \
		"0 r1 r2" "$rc $(sort "$W/out" | xargs)"

	# --remove-retained (with -T to spare one)
	"$SUB" -p "$PORT" -t 'ro/#' --remove-retained -T ro/2 -W 1 > /dev/null 2>&1
	out=$("$SUB" -p "$PORT" -t 'ro/#' -W 1 -v 2>/dev/null)
	expect "sub --remove-retained clears what it received, -T spares ro/2" "ro/2 r2" "$out"
	"$PUB" -p "$PORT" -t ro/2 -n -r -q 1
}

# ---- -D -------------------------------------------------------------------

check_props() {
	local out rc
	"$SUB" -p "$PORT" -V 5 -t 'prop/#' -C 1 -W 10 -F '%C|%R|%D|%P|%E' > "$W/out" &
	local sub=$!
	pub_until_exit $sub -V 5 -t prop/1 -m x -D publish content-type app/x \
		-D publish response-topic re/sp -D publish correlation-data cd \
		-D publish user-property a b -D publish message-expiry-interval 600 \
		-D connect user-property c d -D connect receive-maximum 10 \
		-D disconnect reason-string bye
	wait $sub
	expect_re "pub -D publish ... reaches the subscriber" '^app/x\|re/sp\|cd\|a:b\|(600|59[0-9])$' \
		"$(cat "$W/out")"
	"$PUB" -p "$PORT" -V 5 -t t -m x -D publish session-expiry-interval 5 2>"$W/err"; rc=$?
	expect "-D publish session-expiry-interval is refused (exit 1, says where it fits)" \
		"1 1" "$rc $(grep -c 'may go in: connect, disconnect' "$W/err")"
	"$PUB" -p "$PORT" -V 5 -t t -m x -D connect no-such-prop 1 2>/dev/null
	expect "-D with an unknown property exits 1" 1 $?
	"$PUB" -p "$PORT" -V 5 -t t -m x -D nopacket user-property a b 2>/dev/null
	expect "-D with an unknown packet exits 1" 1 $?
	"$PUB" -p "$PORT" -V 5 -t t -m x -D publish payload-format-indicator 2 2>/dev/null
	expect "-D publish payload-format-indicator 2 exits 1" 1 $?
	"$SUB" -p "$PORT" -V 5 -t t -D subscribe content-type x 2>/dev/null
	expect "-D subscribe content-type exits 1" 1 $?
	"$PUB" -p "$PORT" -V 5 -t t -m x -D connect assigned-client-identifier x 2>"$W/err"
	expect "-D of a server-only property exits 1" "1 1" "$? $(grep -c 'server' "$W/err")"
	# will properties: the will arrives with its content type
	: > "$W/dying"
	"$SUB" -p "$PORT" -V 5 -t alive/w --will-topic will/p --will-payload gone --will-retain \
		-D will content-type will/type > "$W/dying" &
	local dying=$!
	until_subscribed "$W/dying" alive/w
	{ kill -9 $dying; wait $dying; } 2>/dev/null
	out=$("$SUB" -p "$PORT" -V 5 -t will/p -C 1 -W 5 -F '%p %C')
	expect "-D will content-type travels with the will" "gone will/type" "$out"
	"$PUB" -p "$PORT" -t will/p -n -r -q 1
	# subscription identifier, seen with %S
	"$SUB" -p "$PORT" -V 5 -t sid -D subscribe subscription-identifier 42 -C 1 -W 10 \
		-F '%S' > "$W/out" &
	sub=$!
	pub_until_exit $sub -t sid -m x
	wait $sub
	expect "-D subscribe subscription-identifier 42 comes back as %S" "42" "$(cat "$W/out")"
}

# ---- connection flags -----------------------------------------------------

# A relay from Unix socket $1 to 127.0.0.1:$PORT (shardmq has no Unix
# listener yet); its pid in $!.
unix_relay() {
	$PY - "$1" "$PORT" <<'EOF' &
import asyncio, sys
path, port = sys.argv[1], int(sys.argv[2])
async def pipe(r, w):
    try:
        while (b := await r.read(65536)):
            w.write(b)
            await w.drain()
    finally:
        w.close()
async def client(r, w):
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.gather(pipe(r, w2), pipe(r2, w), return_exceptions=True)
async def main():
    srv = await asyncio.start_unix_server(client, path)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
EOF
}

check_connection() {
	local out rc relay=""
	# -L
	"$SUB" -L "mqtt://127.0.0.1:$PORT/url/+" -C 1 -W 10 -v > "$W/out" &
	local sub=$!
	for i in $(seq 100); do
		kill -0 $sub 2>/dev/null || break
		"$PUB" -L "mqtt://someone:secret@127.0.0.1:$PORT/url/t" -m via-url
		sleep 0.1
	done
	wait $sub
	expect "pub -L and sub -L: host, port, user, topic from the URL" "url/t via-url" \
		"$(cat "$W/out")"
	"$PUB" -L "http://127.0.0.1:$PORT/t" -m x 2>/dev/null; expect "pub -L http:// exits 1" 1 $?
	"$PUB" -L "mqtt://127.0.0.1:$PORT" -m x 2>/dev/null; expect "pub -L without a topic exits 1" 1 $?

	# -A
	"$PUB" -p "$PORT" -A 127.0.0.1 -t t -m x; expect "pub -A 127.0.0.1 exits 0" 0 $?
	"$PUB" -p "$PORT" -A 192.0.2.1 -t t -m x 2>"$W/err"; rc=$?
	expect "pub -A with an address not ours exits 2 and says why" "2 1" \
		"$rc $(grep -c 'Cannot assign requested address' "$W/err")"

	# --unix
	if [ "$BROKER" = shardmq ]; then
		unix_relay "$W/mqtt.sock"
		relay=$!
		for i in $(seq 50); do [ -S "$W/mqtt.sock" ] && break; sleep 0.1; done
	fi
	"$SUB" --unix "$W/mqtt.sock" -t unix -C 1 -W 10 > "$W/out" &
	sub=$!
	for i in $(seq 100); do
		kill -0 $sub 2>/dev/null || break
		"$PUB" --unix "$W/mqtt.sock" -t unix -m over-unix
		sleep 0.1
	done
	wait $sub
	expect "pub --unix and sub --unix" "over-unix" "$(cat "$W/out")"
	[ -n "$relay" ] && { kill $relay; wait $relay; } 2>/dev/null
	"$PUB" --unix "$W/no-such.sock" -t t -m x 2>/dev/null
	expect "pub --unix to a missing socket exits 2" 2 $?

	# --quiet, unknown host, --version
	"$PUB" -p "$(free_port)" -t t -m x --quiet 2>"$W/err"; rc=$?
	expect "pub --quiet to a closed port exits 2 and prints nothing" "2 0" \
		"$rc $(wc -c < "$W/err")"
	for t in "$PUB -m x" "$SUB" "$RR -e r -m x"; do
		$t -h no-such-host.invalid -t t 2>"$W/err"; rc=$?
		expect "${t%% *} to an unknown host exits 2 saying 'Unknown host'" "2 1" \
			"$rc $(grep -c 'Unknown host no-such-host.invalid' "$W/err")"
	done
	for t in "$PUB" "$SUB" "$RR"; do
		expect_re "${t##*/} --version" "^${t##*/} version [0-9]" "$($t --version)"
	done
}

# ---- shardmq-rr -------------------------------------------------------------

# A responder: answers one request on rr/req to its response topic with
# "re:" and the payload, echoing the correlation data.
responder() {
	: > "$W/req"
	"$SUB" -p "$PORT" -V 5 -t rr/req -C 1 -W 10 -F '%R|%D|%p' > "$W/req" 2>/dev/null
	IFS='|' read -r rt cd pl < "$W/req"
	if [ -n "$cd" ]; then
		"$PUB" -p "$PORT" -V 5 -t "$rt" -m "re:$pl" -D publish correlation-data "$cd"
	else
		"$PUB" -p "$PORT" -V 5 -t "$rt" -m "re:$pl"
	fi
}

check_rr() {
	local out rc r
	for tool in "$RR" "$(command -v mosquitto_rr)"; do
		[ -x "$tool" ] || continue
		responder &
		r=$!
		sleep 0.3
		out=$("$tool" -p "$PORT" -t rr/req -e rr/resp -m question -W 10); rc=$?
		wait $r
		expect "${tool##*/} gets the response and exits 0" "0 re:question" "$rc $out"
	done
	"$RR" -p "$PORT" -t rr/none -e rr/resp -m q -W 1 2>"$W/err"; rc=$?
	expect "shardmq-rr -W 1 without a responder exits 27, 'Timed out'" "27 Timed out" \
		"$rc $(cat "$W/err")"
	"$RR" -p "$PORT" -V 311 -t rr/req -e rr/resp -m q 2>/dev/null
	expect "shardmq-rr -V 311 exits 1 (request/response is 5.0)" 1 $?
	"$RR" -p "$PORT" -t 'rr/#' -e rr/resp -m q 2>/dev/null
	expect "shardmq-rr with a wildcard topic exits 1" 1 $?
	"$RR" -p "$PORT" -t rr/req -m q 2>/dev/null
	expect "shardmq-rr without -e exits 1" 1 $?
}

# ---- reconnect --------------------------------------------------------------

check_reconnect() {
	local rc
	start_broker restart
	: > "$W/out"
	"$SUB" -p "$PORT" -t 'back/#' -C 2 -W 30 > "$W/out" 2> "$W/err" &
	local sub=$!
	until_subscribed "$W/out" back/ping
	kill "$BPID"
	wait "$BPID" 2>/dev/null
	sleep 1.5
	launch restart
	BPID=$!
	PIDS+=("$BPID")
	wait_port $BPID
	pub_until_exit $sub -t back/after -m after-restart
	wait $sub; rc=$?
	expect "sub reconnects after the broker restarts and receives (exit 0)" \
		"0 after-restart" "$rc $(tail -1 "$W/out")"
	expect "sub says it lost the connection and reconnected" "1 1" \
		"$(grep -c 'connection lost' "$W/err") $(grep -c '^shardmq-sub: reconnected' "$W/err")"
}

run_checks() {
	W=$TMP/$BROKER
	mkdir -p "$W"
	chmod 777 "$W"
	start_broker main
	if [ -n "$MSUB" ] && [ -n "$MPUB" ]; then
		check_format_specs
		check_json
		check_debug
		check_id_prefix
	fi
	check_format_times
	check_pub
	check_sub_filters
	check_props
	check_connection
	check_rr
	stop_brokers
	check_reconnect
	stop_brokers
}

if [ -x "$MOSQ" ]; then
	BROKER=mosquitto run_checks
else
	echo "23_tools_flags: mosquitto half skipped, $MOSQ is not installed"
fi
BROKER=shardmq run_checks

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
