#!/usr/bin/env bash
# Usage: demo.sh CONVOY TESTSERVER
# Starts the test server on loopback with a 256 MiB file, downloads it with 8
# connections, checks its SHA-256, and stops the server.
set -euo pipefail
convoy=$1
server=$2
work=$(mktemp -d)
info="$work/server.out"
"$server" -addr 127.0.0.1:0 -size 256M -print-sha256 >"$info" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  [ "$(wc -l <"$info")" -ge 2 ] && break
  sleep 0.1
done
want=$(sed -n 1p "$info")
url=$(sed -n 2p "$info")
[ -n "$url" ] || { echo "demo: the test server did not start" >&2; exit 1; }
echo "demo: downloading $url (256 MiB) with 8 connections"
"$convoy" get -n 8 -d "$work" -o demo.bin "$url"
got=$(sha256sum "$work/demo.bin" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "demo: SHA-256 mismatch: got $got, want $want" >&2
  exit 1
fi
echo "demo: SHA-256 matches ($got)"
