#!/bin/bash
# Install MQTT.js (npm package mqtt, pinned in package.json) into tests/it/web/node_modules,
# only when its browser bundle is missing. Needs npm and the npm registry; nothing else.
# Usage: bash tests/it/web/install.sh    (the Makefile's deps target may call it)
set -e
cd "$(dirname "$0")"
bundle=node_modules/mqtt/dist/mqtt.min.js
if [ -f "$bundle" ]; then
	exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
	echo "install.sh: npm is missing (apt-get install npm)" >&2
	exit 1
fi
npm install --no-audit --no-fund --no-save --omit=dev --ignore-scripts >/dev/null
[ -f "$bundle" ] || { echo "install.sh: $bundle not found after npm install" >&2; exit 1; }
echo "install.sh: MQTT.js $(node -p 'require("./node_modules/mqtt/package.json").version' \
	2>/dev/null) installed in tests/it/web/node_modules"
