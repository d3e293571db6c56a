#!/bin/bash
# 70_package.sh - make install, make uninstall and make deb, as a packager or an admin sees
# them: the installed file list and modes, every @PLACEHOLDER@ filled in, the installed
# broker's --version and --test-config on the example config (also with every commented
# example line switched on), an existing config kept over a reinstall, every option of
# every program's --help documented in its man page, a systemd unit with the settings the
# service needs (and clean under systemd-analyze verify when that exists), and a .deb whose
# contents, control fields, dependencies and maintainer scripts are inspected with dpkg-deb.
# The .deb is never installed here (that needs systemd as init): its postinst is only run
# against stub commands, to show it creates the user and leaves systemctl alone without
# systemd.
#
# Needs $BUILD/shardmq and the tools built (BUILD defaults to build); openssl for the TLS
# lines of the example; without groff the man page rendering check is skipped, without
# dpkg-deb the package checks are. Prints "N passed, M failed"; exits non-zero on failure.
#
# Try it: make BUILD=build-x build-x/shardmq build-x/shardmq-{pub,sub,passwd} &&
#         BUILD=build-x bash tests/it/70_package.sh

set -u
BUILD=${BUILD:-build}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d /tmp/smq-package-XXXXXX)
PASS=0
FAIL=0
trap 'rm -rf "$TMP"' EXIT

ok() { echo "ok   70_package/$1"; PASS=$((PASS + 1)); }
bad() { echo "FAIL 70_package/$1: $2"; FAIL=$((FAIL + 1)); }
skip() { echo "skip 70_package/$1: $2"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name" "$*"; fi; }
mk() { make -s --no-print-directory -C "$SRC" BUILD="$BUILD" "$@"; }

for p in shardmq shardmq-pub shardmq-sub shardmq-passwd; do
	[ -x "$SRC/$BUILD/$p" ] || { echo "70_package: $BUILD/$p not built"; echo "0 passed, 1 failed"; exit 1; }
done
VERSION=$(sed -n 's/^#define SMQ_VERSION "\(.*\)"/\1/p' "$SRC/core/version.h")

# --- make install into a DESTDIR, default PREFIX --------------------------------------
R=$TMP/root
P=/usr/local
if mk install DESTDIR="$R" > "$TMP/log" 2>&1; then ok install; else bad install "$(tail -5 "$TMP/log")"; fi

want="755 $P/bin/shardmq-passwd
755 $P/bin/shardmq-pub
755 $P/bin/shardmq-rr
755 $P/bin/shardmq-sub
644 $P/etc/shardmq/shardmq.conf
644 $P/lib/systemd/system/shardmq.service
755 $P/sbin/shardmq
644 $P/share/man/man1/shardmq-passwd.1
644 $P/share/man/man1/shardmq-pub.1
644 $P/share/man/man1/shardmq-rr.1
644 $P/share/man/man1/shardmq-sub.1
644 $P/share/man/man5/shardmq.conf.5
644 $P/share/man/man8/shardmq.8
644 $P/share/shardmq/grafana-shardmq.json"
got=$(cd "$R" && find . -type f -printf '%m /%P\n' | sort -k2)
if [ "$got" = "$want" ]; then ok install_files_and_modes
else bad install_files_and_modes "got: $(echo "$got" | tr '\n' ';')"; fi

left=$(grep -l '@[A-Z]*@' "$R$P/etc/shardmq/shardmq.conf" "$R$P/lib/systemd/system/shardmq.service" \
	"$R$P"/share/man/man*/* 2>&1)
check placeholders_filled [ -z "$left" ]
check manpage_version grep -q "\"shardmq $VERSION\"" "$R$P/share/man/man8/shardmq.8"

for p in sbin/shardmq bin/shardmq-pub bin/shardmq-sub bin/shardmq-passwd; do
	n=${p#*/}
	out=$("$R$P/$p" --version 2>&1)
	check "version_$n" [ "$out" = "$n version $VERSION" ]
done

CONF=$R$P/etc/shardmq/shardmq.conf
out=$("$R$P/sbin/shardmq" --test-config -c "$CONF" 2>&1)
check example_config_is_good [ "$out" = "shardmq: $CONF: the configuration is good" ]

# Every commented "#key value" line of the example, switched on, with its paths moved to
# files made here: each example is a line shardmq accepts.
E=$TMP/etc
mkdir -p "$E/conf.d"
if command -v openssl > /dev/null &&
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=localhost -keyout "$E/server.key" -out "$E/server.crt" > /dev/null 2>&1; then
	cp "$E/server.crt" "$E/ca.crt"
	"$R$P/bin/shardmq-passwd" -c -b "$E/passwd" alice secret > /dev/null
	echo 'topic read #' > "$E/acl"
	sed -n "s|^#\([a-z_][a-z_0-9.]* \)|\1|p" "$CONF" |
		sed -e "s|$P/etc/shardmq/|$E/|g" -e "s|/var/log/shardmq/|$TMP/|" -e "s|/run/shardmq/|$TMP/|" \
		> "$TMP/all.conf"
	n=$(wc -l < "$TMP/all.conf")
	out=$("$R$P/sbin/shardmq" --test-config -c "$TMP/all.conf" 2>&1)
	if [ "$n" -ge 20 ] && [ "$out" = "shardmq: $TMP/all.conf: the configuration is good" ]; then
		ok example_lines_all_valid
	else
		bad example_lines_all_valid "$n lines: $out"
	fi
else
	skip example_lines_all_valid "no openssl to make the example's certificate"
fi

# A reinstall keeps the admin's config.
echo "max_keepalive 30" >> "$CONF"
cp "$CONF" "$TMP/edited"
mk install DESTDIR="$R" > /dev/null 2>&1
check reinstall_keeps_config cmp -s "$CONF" "$TMP/edited"

# Man pages: each renders without groff warnings, and every long option a program's
# --help prints is documented in its page (written "\-\-name" in roff).
MAN=$R$P/share/man
if command -v groff > /dev/null; then
	for m in "$MAN"/man*/*; do
		w=$(groff -man -Tutf8 -ww -z "$m" 2>&1)
		check "man_renders_${m##*/}" [ -z "$w" ]
	done
else
	skip man_renders "no groff"
fi
for pair in sbin/shardmq:man8/shardmq.8 bin/shardmq-pub:man1/shardmq-pub.1 \
	bin/shardmq-sub:man1/shardmq-sub.1 bin/shardmq-passwd:man1/shardmq-passwd.1; do
	bin=${pair%%:*}
	page=$MAN/${pair#*:}
	missing=
	opts=$("$R$P/$bin" --help 2>&1 | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
	shorts=$("$R$P/$bin" --help 2>&1 | grep -o -- ' -[a-zA-Z]\b' | sort -u)
	for o in $opts $shorts; do
		grep -qF -- "$(echo "$o" | sed 's/-/\\-/g')" "$page" || missing="$missing $o"
	done
	if [ -n "$opts" ] && [ -z "$missing" ]; then ok "man_documents_options_${bin#*/}"
	else bad "man_documents_options_${bin#*/}" "undocumented:${missing:- (no options found)}"; fi
done

# The unit names this PREFIX's paths and the settings the service needs.
U=$R$P/lib/systemd/system/shardmq.service
unit_ok=true
for line in 'Type=simple' "ExecStart=$P/sbin/shardmq -c $P/etc/shardmq/shardmq.conf" \
	'ExecReload=/bin/kill -HUP $MAINPID' 'LimitNOFILE=1048576' 'LimitMEMLOCK=infinity' \
	'Restart=on-failure' 'User=shardmq' 'WantedBy=multi-user.target'; do
	grep -qxF -- "$line" "$U" || { unit_ok=false; bad unit_settings "no line '$line'"; }
done
$unit_ok && ok unit_settings

# --- make install with another PREFIX (no DESTDIR): the paths exist, so systemd can check
# the unit as it would load it. ----------------------------------------------------------
Q=$TMP/prefix
mk install PREFIX="$Q" > /dev/null 2>&1
check prefix_paths grep -qxF "ExecStart=$Q/sbin/shardmq -c $Q/etc/shardmq/shardmq.conf" \
	"$Q/lib/systemd/system/shardmq.service"
if command -v systemd-analyze > /dev/null; then
	out=$(systemd-analyze verify --man=no "$Q/lib/systemd/system/shardmq.service" 2>&1)
	check unit_verifies [ -z "$out" ]
	[ -z "$out" ] || echo "$out"
else
	skip unit_verifies "no systemd-analyze"
fi

# --- make uninstall: everything goes but an edited config --------------------------------
mk uninstall DESTDIR="$R" > /dev/null 2>&1
left=$(cd "$R" && find . -type f -printf '/%P ')
check uninstall_keeps_only_edited_config [ "$left" = "$P/etc/shardmq/shardmq.conf " ]
mk uninstall PREFIX="$Q" > /dev/null 2>&1
left=$(cd "$Q" && find . -type f -printf '/%P ')
check uninstall_removes_unchanged_config [ -z "$left" ]

# --- make deb ----------------------------------------------------------------------------
if ! command -v dpkg-deb > /dev/null; then
	skip deb "no dpkg-deb"
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" = 0 ]
	exit
fi
DEB=$TMP/shardmq.deb
if mk deb DEB_ROOT="$TMP/debroot" DEB="$DEB" > "$TMP/log" 2>&1 && [ -f "$DEB" ]; then ok deb_builds
else bad deb_builds "$(tail -5 "$TMP/log")"; fi

dpkg-deb -c "$DEB" > "$TMP/contents" 2>&1
deb_files=$(awk '$1 !~ /^d/ { print $1, $2, $6 }' "$TMP/contents" | sort -k3)
want="-rw-r--r-- root/root ./etc/shardmq/shardmq.conf
-rw-r--r-- root/root ./lib/systemd/system/shardmq.service
-rwxr-xr-x root/root ./usr/bin/shardmq-passwd
-rwxr-xr-x root/root ./usr/bin/shardmq-pub
-rwxr-xr-x root/root ./usr/bin/shardmq-rr
-rwxr-xr-x root/root ./usr/bin/shardmq-sub
-rwxr-xr-x root/root ./usr/sbin/shardmq
-rw-r--r-- root/root ./usr/share/doc/shardmq/copyright
-rw-r--r-- root/root ./usr/share/man/man1/shardmq-passwd.1.gz
-rw-r--r-- root/root ./usr/share/man/man1/shardmq-pub.1.gz
-rw-r--r-- root/root ./usr/share/man/man1/shardmq-rr.1.gz
-rw-r--r-- root/root ./usr/share/man/man1/shardmq-sub.1.gz
-rw-r--r-- root/root ./usr/share/man/man5/shardmq.conf.5.gz
-rw-r--r-- root/root ./usr/share/man/man8/shardmq.8.gz
-rw-r--r-- root/root ./usr/share/shardmq/grafana-shardmq.json"
if [ "$deb_files" = "$want" ]; then ok deb_contents
else bad deb_contents "got: $(echo "$deb_files" | tr '\n' ';')"; fi

field() { dpkg-deb -f "$DEB" "$1" 2>/dev/null; }
check deb_package [ "$(field Package)" = shardmq ]
check deb_version [ "$(field Version)" = "$VERSION" ]
check deb_arch [ "$(field Architecture)" = "$(dpkg --print-architecture)" ]
check deb_conffiles [ "$(dpkg-deb -I "$DEB" conffiles 2>&1)" = /etc/shardmq/shardmq.conf ]

# Every shared library the programs link (NEEDED) comes from a package Depends names.
dpkg-deb -x "$DEB" "$TMP/x"
depends=" $(field Depends | sed 's/([^)]*)//g; s/,/ /g') "
dep_ok=true
nlibs=0
for b in usr/sbin/shardmq usr/bin/shardmq-pub usr/bin/shardmq-sub usr/bin/shardmq-passwd; do
	for lib in $(readelf -d "$TMP/x/$b" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
		case $lib in lib[at]san.so*|libubsan.so*) continue ;; esac	# make asan's build
		nlibs=$((nlibs + 1))
		path=$(ldd "$TMP/x/$b" | awk -v l="$lib" '$1 == l { print $3 }')
		pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
		[ -z "$pkg" ] && pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1)
		case "$depends" in
		*" $pkg "*) ;;
		*) dep_ok=false; bad deb_depends "$b: $lib (package '$pkg') not in Depends:$depends" ;;
		esac
	done
done
[ "$nlibs" -ge 4 ] || { dep_ok=false; bad deb_depends "only $nlibs libraries found"; }
$dep_ok && ok deb_depends

# The packaged unit and config name the Debian paths.
check deb_unit_paths grep -qxF "ExecStart=/usr/sbin/shardmq -c /etc/shardmq/shardmq.conf" \
	"$TMP/x/lib/systemd/system/shardmq.service"
out=$("$TMP/x/usr/sbin/shardmq" --test-config -c "$TMP/x/etc/shardmq/shardmq.conf" 2>&1)
check deb_config_is_good [ "$out" = "shardmq: $TMP/x/etc/shardmq/shardmq.conf: the configuration is good" ]
check deb_binary_stripped [ "$(stat -c %s "$TMP/x/usr/sbin/shardmq")" -lt "$(stat -c %s "$SRC/$BUILD/shardmq")" ]
out=$("$TMP/x/usr/sbin/shardmq" --version 2>&1)
check deb_binary_runs [ "$out" = "shardmq version $VERSION" ]

# Maintainer scripts: present, executable, valid sh; postinst run against stubs on this
# machine (no /run/systemd/system here) creates the user and never calls systemctl.
dpkg-deb -e "$DEB" "$TMP/ctl"
for s in postinst prerm postrm; do
	check "deb_${s}_script" sh -c "test -x '$TMP/ctl/$s' && sh -n '$TMP/ctl/$s'"
done
if [ -d /run/systemd/system ]; then
	skip postinst_without_systemd "systemd is running here"
else
	mkdir -p "$TMP/stub"
	for c in getent adduser systemctl; do
		printf '#!/bin/sh\necho "%s $*" >> "%s/calls"\n[ %s != getent ]\n' "$c" "$TMP" "$c" \
			> "$TMP/stub/$c"
		chmod +x "$TMP/stub/$c"
	done
	PATH=$TMP/stub:$PATH sh "$TMP/ctl/postinst" configure > /dev/null 2>&1
	rc=$?
	calls=$(cat "$TMP/calls" 2>/dev/null)
	if [ $rc = 0 ] && echo "$calls" | grep -q '^adduser --system .*shardmq$' &&
		! echo "$calls" | grep -q '^systemctl'; then
		ok postinst_without_systemd
	else
		bad postinst_without_systemd "rc $rc, calls: $(echo "$calls" | tr '\n' ';')"
	fi
	: > "$TMP/calls"
	PATH=$TMP/stub:$PATH sh "$TMP/ctl/prerm" remove > /dev/null 2>&1
	check prerm_without_systemd [ $? = 0 -a ! -s "$TMP/calls" ]
fi

# The package itself, installed on this machine as a user would: dpkg -i, the broker started
# as the unit starts it (user shardmq, the packaged binary, a state directory), serving
# clients, then dpkg --purge. Only as root, without a running systemd (postinst would start
# the service on port 1883) and when no shardmq package is installed already.
if [ "$(id -u)" != 0 ]; then
	skip deb_installs_and_serves "needs root"
elif [ -d /run/systemd/system ]; then
	skip deb_installs_and_serves "systemd is running here: installing would start the service"
elif dpkg -s shardmq > /dev/null 2>&1; then
	skip deb_installs_and_serves "a shardmq package is installed already"
else
	if dpkg -i "$DEB" > "$TMP/dpkg.log" 2>&1; then ok deb_installs
	else bad deb_installs "$(tail -3 "$TMP/dpkg.log")"; fi
	check deb_installed_version [ "$(/usr/sbin/shardmq --version 2>&1)" = "shardmq version $VERSION" ]
	check deb_created_the_user sh -c 'getent passwd shardmq > /dev/null'
	DP=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	install -d -o shardmq -g shardmq "$TMP/state"
	printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s\n' \
		"$DP" "$TMP/state" > "$TMP/deb.conf"
	chmod 644 "$TMP/deb.conf"
	chmod 755 "$TMP"
	setpriv --reuid=shardmq --regid=shardmq --init-groups \
		/usr/sbin/shardmq -c "$TMP/deb.conf" --shards 1 > "$TMP/deb.log" 2>&1 &
	DB=$!
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$DP") 2>/dev/null && break; sleep 0.05; done
	timeout 5 mosquitto_sub -p "$DP" -t deb/t -C 1 > "$TMP/deb.sub" 2>&1 &
	DS=$!
	sleep 0.3
	mosquitto_pub -p "$DP" -t deb/t -m installed -q 1
	wait $DS
	check deb_broker_serves_as_user_shardmq \
		[ "$(cat "$TMP/deb.sub")" = installed -a "$(ps -o user= -p $DB 2>/dev/null)" = shardmq ]
	kill $DB 2>/dev/null
	wait $DB
	check deb_broker_stops_cleanly [ $? = 0 ]
	check deb_store_owned_by_shardmq \
		[ "$(stat -c %U "$TMP/state/shardmq.db/shard-0/data.mdb" 2>&1)" = shardmq ]
	if dpkg --purge shardmq > "$TMP/purge.log" 2>&1; then ok deb_purges
	else bad deb_purges "$(tail -3 "$TMP/purge.log")"; fi
	check deb_purge_removes_files [ ! -e /usr/sbin/shardmq -a ! -e /etc/shardmq/shardmq.conf ]
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
