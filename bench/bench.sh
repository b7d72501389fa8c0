#!/usr/bin/env bash
# convoy's side-by-side benchmarks on loopback.
#
#   bench/bench.sh s1 [RUNS]   1 GiB from nginx: convoy -n 16 against curl -o, in turn
#   bench/bench.sh s4          256 MiB at 2 MiB/s per connection, kill -9 at 3, 7
#                              and 11 s, resume; bytes the server sent twice
#
# Installs nginx-light and curl from Debian if missing, serves random files
# from a work folder (BENCH_WORK, default /tmp/convoy-bench), talks to
# 127.0.0.1 only, and stops nginx by its PID on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=${BENCH_WORK:-/tmp/convoy-bench}
port_fast=18080
port_slow=18082
convoy="$work/convoy"

need() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v curl >/dev/null || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

setup() {
  need
  mkdir -p "$work"/{www,logs,tmp,out}
  [ -f "$work/www/1g.bin" ] || head -c 1G /dev/urandom >"$work/www/1g.bin"
  [ -f "$work/www/256m.bin" ] || head -c 256M /dev/urandom >"$work/www/256m.bin"
  (cd "$work/www" && sha256sum 1g.bin 256m.bin >"$work/sums")
  (cd "$root" && go build -o "$convoy" ./cmd/convoy)
  sed -e "s|@WORK@|$work|g" -e "s|@PORT_FAST@|$port_fast|" -e "s|@PORT_SLOW@|$port_slow|" \
    "$here/nginx.conf.in" >"$work/nginx.conf"
  nginx -c "$work/nginx.conf"
  trap stop EXIT
  for _ in $(seq 1 50); do
    curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$port_fast/256m.bin" && return
    sleep 0.1
  done
  echo "bench: nginx did not start" >&2
  exit 1
}

stop() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
}

# checksum FILE NAME: fails unless FILE has the recorded SHA-256 of NAME.
checksum() {
  local want got
  want=$(awk -v n="$2" '$2 == n {print $1}' "$work/sums")
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "bench: $1 is corrupt ($got, want $want)" >&2; exit 1; }
}

# wall CMD...: runs CMD and prints its wall seconds.
wall() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

s1() {
  local runs=${1:-5} url="http://127.0.0.1:$port_fast/1g.bin" c k
  local -a tc tk
  for i in $(seq 1 "$runs"); do
    rm -f "$work/out/curl.bin" "$work/out/convoy.bin"
    sync # each tool starts on a quiet disk, not with the other's dirty pages
    c=$(wall curl -s -o "$work/out/curl.bin" "$url")
    checksum "$work/out/curl.bin" 1g.bin
    rm -f "$work/out/curl.bin"
    sync
    k=$(wall "$convoy" get -q -n 16 -o "$work/out/convoy.bin" "$url")
    checksum "$work/out/convoy.bin" 1g.bin
    rm -f "$work/out/convoy.bin"
    tc+=("$c"); tk+=("$k")
    printf 'run %d: curl %.3f s, convoy %.3f s, ratio %.3f\n' "$i" "$c" "$k" "$(echo "$k / $c" | bc -l)"
  done
  local mc mk
  mc=$(printf '%s\n' "${tc[@]}" | median)
  mk=$(printf '%s\n' "${tk[@]}" | median)
  local ratios
  ratios=$(for i in "${!tc[@]}"; do echo "${tk[$i]} / ${tc[$i]}" | bc -l; done | median)
  echo
  echo "| S1: 1 GiB, loopback nginx | median wall s | ratio to curl |"
  echo "|---|---|---|"
  printf '| curl -o | %.3f | 1.00 |\n' "$mc"
  printf '| convoy get -n 16 | %.3f | %.2f (median of per-run ratios) |\n' "$mk" "$ratios"
}

# sent LOG: sum of body bytes nginx logged.
sent() { awk '{s += $3} END {print s + 0}' "$1"; }

s4() {
  local url="http://127.0.0.1:$port_slow/256m.bin" size=$((256 << 20)) log="$work/logs/slow.log"
  local out="$work/out/s4.bin" pid prev=0 now
  rm -f "$out" "$out.part" "$out.convoy"
  : >"$log"
  nginx -c "$work/nginx.conf" -s reopen
  sleep 0.2
  echo "| S4: kill -9 at | bytes sent so far | bytes sent twice so far |"
  echo "|---|---|---|"
  for at in 3 7 11; do
    "$convoy" get -q -n 8 -o "$out" "$url" &
    pid=$!
    sleep $((at - prev))
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    prev=$at
    sleep 0.3 # let nginx log the cut answers
    now=$(sent "$log")
    printf '| %d s | %d | - |\n' "$at" "$now"
  done
  "$convoy" get -q -n 8 -o "$out" "$url"
  sleep 0.3
  checksum "$out" 256m.bin
  now=$(sent "$log")
  printf '| done | %d | %d (%.1f MiB) |\n' "$now" "$((now - size))" "$(echo "($now - $size) / 1048576" | bc -l)"
  rm -f "$out"
}

case "${1:-}" in
  s1) setup; shift; s1 "$@" ;;
  s4) setup; s4 ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
