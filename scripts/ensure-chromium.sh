#!/usr/bin/env bash
# Makes sure Debian's Chromium exists (/usr/bin/chromium), installing it with
# apt-get when missing. The dashboard test (monitoring/httpapi) drives it
# headless through chromedp; nothing here starts a browser.
#
# QUANTUM_FLOW_CHROMIUM may name another browser binary to use instead.
set -euo pipefail

have_chromium() {
	if [ -n "${QUANTUM_FLOW_CHROMIUM:-}" ]; then
		[ -x "$QUANTUM_FLOW_CHROMIUM" ]
		return
	fi
	command -v chromium >/dev/null 2>&1
}

if have_chromium; then
	exit 0
fi
echo "ensure-chromium: chromium missing; installing Debian's chromium package" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
		echo "ensure-chromium: need root (or sudo) to apt-get install chromium" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
have_chromium || { echo "ensure-chromium: install finished but chromium is still missing" >&2; exit 1; }
