#!/usr/bin/env bash
# convoy's side-by-side benchmarks against other download tools, on loopback.
#
#   bench/bench.sh all [RUNS]  every scenario below; writes bench/RESULTS.md
#   bench/bench.sh s1 [RUNS]   1 GiB from nginx, unthrottled, to disk: every tool,
#                              plus the limits curl -o /dev/null and dd of the file
#   bench/bench.sh s2 [RUNS]   256 MiB at 5 MiB/s per connection, 16 connections;
#                              ideal 256 MiB / (16 x 5 MiB/s) = 3.2 s
#   bench/bench.sh s4 [RUNS]   256 MiB at 2 MiB/s per connection, 8 connections:
#                              kill -9 after 3, 7 and 11 s of running time, run
#                              to the end, count the bytes the server sent twice,
#                              in all and per kill
#   bench/bench.sh s7 [RUNS]   S2 behind a proxy that resets every connection
#                              after 4-16 MiB, against the same proxy without resets
#   bench/bench.sh s8 [RUNS]   S1 with convoy as shipped against convoy with
#                              --checkpoint-interval 1h (durability cost)
#   bench/bench.sh micro       the Go micro-benchmarks (go test -bench), 3 counts
#   bench/bench.sh s3 [RUNS]   256 MiB from three mirrors (127.0.0.11-13) at 1, 2
#                              and 4 MiB/s per connection, 4 connections each;
#                              ideal 256 MiB / (4 x 7 MiB/s) = 9.14 s; then S3b:
#                              plus a bad mirror (127.0.0.14, another file, 8 MiB/s),
#                              and one `convoy bench` ranking of the three
#   bench/bench.sh s3m [RUNS]  S3 with the three mirrors named only in a Metalink
#                              (f.meta4: size, sha-256, the three URLs); axel
#                              reads no Metalink
#   bench/bench.sh s5 [RUNS]   a lone server that caps connections: 256 MiB at
#                              1 MiB/s per connection, at most 4 at once (503
#                              beyond, 127.0.0.15), 12 connections asked; ideal
#                              256 MiB / (4 x 1 MiB/s) = 64 s; counts the 503s
# Convoy choosing its connection count (no -n), issue 13; each counts the
# connections open at once (nginx's log) and convoy's own count (--json events):
#   bench/bench.sh s9 [RUNS]   256 MiB at 1 MiB/s per connection behind a 32 MiB/s
#                              link (namespace, tbf); ideal 8 s; target 1.10 x
#                              ideal, at most 40 connections
#   bench/bench.sh s10 [RUNS]  256 MiB at 5 MiB/s per connection behind a 20 MiB/s
#                              link; ideal 12.8 s; target 1.05 x, at most 6 at once
#   bench/bench.sh s11 [RUNS]  S1's 1 GiB unthrottled: no -n against -n 4, 8, 16;
#                              target 1.05 x the best fixed -n
#   bench/bench.sh s12 [RUNS]  256 MiB at 2 MiB/s per connection from a server that
#                              takes 6 at once (503 beyond, 127.0.0.16); ideal
#                              21.3 s; target 1.05 x, at most 12 answers of 503
#   bench/bench.sh s13 [RUNS]  a slow mirror (40 KiB/s in all, tc htb) first, a fast
#                              one second, 256 MiB, against the fast one alone;
#                              target: fast alone + 2 s
#   bench/bench.sh s14 [RUNS]  peak RSS for a sparse 1 GiB file (RUNS runs) and a
#                              sparse 64 GiB one (BENCH_BIG_RUNS, default 1), -n 16
#                              and no -n; target 20 MiB. convoy reserves and writes
#                              the whole 64 GiB output: it needs 66 GiB free under
#                              BENCH_WORK (else the run is skipped, with a note) and
#                              is deleted right after each run
#
# RUNS (default 3) is per tool; the tools take turns (A B C A B C ...).
# Environment: BENCH_WORK (work folder, default /tmp/convoy-bench), BENCH_PORT
# (first of four loopback ports, default 18080), BENCH_TIMEOUT (seconds one
# run may take, default 120), BENCH_SEED (fault proxy seed, default 1),
# BENCH_FUZZ_WAIT (seconds to wait for running fuzzers to end, default 2400),
# BENCH_BIG_RUNS (S14's 64 GiB runs per tool, default 1), BENCH_BIG_TIMEOUT
# (seconds one such run may take, default 900), BENCH_BIG_GIB (the size of S14's
# big file in GiB, default 64; less where the disk has no room for 64).
#
# S9, S10 and S13 run nginx and the tools in a network namespace of their own,
# convoy-bench-PORT, whose loopback tc shapes (the same four port numbers,
# on the namespace's own 127.0.0.1). Everything else runs on the host's loopback.
#
# Installs what is missing from Debian (nginx-light, curl, aria2, axel, lftp,
# time, iproute2), builds convoy from this tree and the fault proxy from
# bench/faultproxy, talks to 127.0.0.0/8 only, and stops every process it
# started by its PID on exit, and the namespace with its nginx.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=${BENCH_WORK:-/tmp/convoy-bench}
port=${BENCH_PORT:-18080}
port_fast=$port            # unthrottled (S1, S8)
port_cap=$((port + 1))     # 5 MiB/s per connection (S2, and S7 behind the proxy)
port_slow=$((port + 2))    # 2 MiB/s per connection (S4)
port_proxy=$((port + 3))   # the fault proxy (S7)
limit=${BENCH_TIMEOUT:-120}
seed=${BENCH_SEED:-1}
convoy="$work/convoy"
faultproxy="$work/bin/faultproxy"
refcopy="$work/bin/refcopy"
out_dir="$work/out"
out_name=dl.bin
MiB=1048576
ns_name="convoy-bench-$port" # S9, S10, S13: the network namespace, with the same ports inside
port_ns1=$port               # 1 MiB/s per connection (S9)
port_ns5=$((port + 1))       # 5 MiB/s per connection (S10)
port_nsslow=$((port + 2))    # S13's slow mirror, 40 KiB/s in all
port_nsfast=$((port + 3))    # unthrottled: S13's fast mirror, the link checks
big_runs=${BENCH_BIG_RUNS:-1}
big_limit=${BENCH_BIG_TIMEOUT:-900}
big_gib=${BENCH_BIG_GIB:-64}

# The tools, one line each:  scenarios | kind | label | command
#   kind   get: the output is checked by SHA-256 after every run
#          ref: as get, and the scenario's reference for the ratio column
#          limit: writes no file (an upper bound, not a tool)
#          again: S4 only, the command for restarts when it differs from get
#          bench: S3 only, run once, not timed (convoy bench's ranking)
#          big: S14's big file, checked by its size and sampled MiB (see check_sampled)
#          trace: S9-S14, run once after the timed runs, not timed: the get row of the
#                 same label with --json, for convoy's own account of its connection
#                 count (--json makes convoy hash the file, which costs time: 2-3 x on
#                 S11's loopback, so the timed rows go without it)
#   command placeholders: {CONVOY} the convoy binary, {URL}, {URLS} (the mirrors'
#          URLs, space-separated; S3 and S3b), {OUT} = {DIR}/{NAME},
#          {FILE} the served file on disk, {REFCOPY} bench/refcopy's binary,
#          {META4} a Metalink naming S3's three mirrors (S3m only),
#          {NS} `ip netns exec` the bench's namespace, {SLOW} and {FAST} S13's
#          mirrors. It runs as `bash -c "exec COMMAND"`.
TOOLS='
s1 s2 s7 s11 s14 | get | convoy -n 16              | {CONVOY} get -n 16 -o {OUT} {URL}
s1       | ref   | curl -o                         | curl -s -o {OUT} {URL}
s1 s2 s7 s11 s12 s14 | get | aria2c -x16 -s16      | aria2c -q -x16 -s16 -k1M --allow-overwrite=true --file-allocation=none -d {DIR} -o {NAME} {URL}
s1 s2 s7 s11 s12 s14 | get | axel -n 16            | axel -q -n 16 -o {OUT} {URL}
s1 s2 s7 | get   | lftp pget -n 16                 | lftp -c "pget -n 16 {URL} -o {OUT}"
s1       | limit | curl -o /dev/null               | curl -s -o /dev/null {URL}
s1       | limit | dd bs=16k of the served file    | dd if={FILE} of=/dev/null bs=16k
s1       | limit | dd to disk, O_DIRECT bs=8M      | dd if={FILE} of={OUT} bs=8M oflag=direct status=none
s1       | limit | dd to disk, bs=8M, fdatasync    | dd if={FILE} of={OUT} bs=8M conv=fdatasync status=none
s1       | limit | refcopy -n 16 (16 ranges, fdatasync) | {REFCOPY} -n 16 {URL} {OUT}
s1       | limit | 16 dd to disk at once, O_DIRECT | sh -c "for i in \$(seq 0 15); do dd if={FILE} of={OUT} bs=8M count=8 skip=\$((i*8)) seek=\$((i*8)) oflag=direct conv=notrunc status=none & done; wait"
s4       | get   | convoy -n 8                     | {CONVOY} get -q -n 8 -o {OUT} {URL}
s4       | get   | aria2c -x8 -s8 (defaults)       | aria2c -x8 -s8 -d {DIR} -o {NAME} {URL}
s4       | again | aria2c -x8 -s8 (defaults)       | aria2c -c -x8 -s8 -d {DIR} -o {NAME} {URL}
s4       | get   | axel -n 8                       | axel -q -n 8 -o {OUT} {URL}
s8       | ref   | convoy -n 16 as shipped         | {CONVOY} get -n 16 -o {OUT} {URL}
s8       | get   | convoy -n 16 --checkpoint-interval 1h | {CONVOY} get -n 16 --checkpoint-interval 1h -o {OUT} {URL}
s3       | get   | convoy -n 12 -x 4               | {CONVOY} get -q -n 12 -x 4 -o {OUT} {URLS}
s3       | get   | aria2c -x4 -s12 -k1M            | aria2c -q -x4 -s12 -k1M -j1 --allow-overwrite=true --file-allocation=none -d {DIR} -o {NAME} {URLS}
s3       | get   | axel -n 12                      | axel -q -n 12 -o {OUT} {URLS}
s3       | bench | convoy bench (ranking, once)    | {CONVOY} bench --duration 3s -n 4 --json {URLS}
s3b      | get   | convoy -n 12 -x 4, 4 URLs       | {CONVOY} get -q -n 12 -x 4 -o {OUT} {URLS}
s3m      | get   | convoy -n 12 -x 4 f.meta4       | {CONVOY} get -q -n 12 -x 4 -o {OUT} {META4}
s3m      | get   | convoy f.meta4 (no -n)          | {CONVOY} get -q -o {OUT} {META4}
s3m      | get   | aria2c -x4 -s12 -k1M -M f.meta4 | aria2c -q -x4 -s12 -k1M -j1 --allow-overwrite=true --file-allocation=none -d {DIR} -M {META4}
s5       | get   | convoy -n 12                    | {CONVOY} get -n 12 -o {OUT} {URLS}
s5       | get   | aria2c -x12 -s12 -k1M           | aria2c -q -x12 -s12 -k1M --allow-overwrite=true --file-allocation=none -d {DIR} -o {NAME} {URLS}
s5       | get   | axel -n 12                      | axel -q -n 12 -o {OUT} {URLS}
s9 s10   | get   | convoy (auto)                   | {NS} {CONVOY} get -o {OUT} {URL}
s9 s10   | trace | convoy (auto)                   | {NS} {CONVOY} get --json -o {OUT} {URL}
s9 s10   | get   | aria2c -x16 -s16                | {NS} aria2c -q -x16 -s16 -k1M --allow-overwrite=true --file-allocation=none -d {DIR} -o {NAME} {URL}
s9       | get   | axel -n 32                      | {NS} axel -q -n 32 -o {OUT} {URL}
s10      | get   | axel -n 16                      | {NS} axel -q -n 16 -o {OUT} {URL}
s11 s12 s14 | get | convoy (auto)                  | {CONVOY} get -o {OUT} {URL}
s11 s12 s14 | trace | convoy (auto)                | {CONVOY} get --json -o {OUT} {URL}
s11      | get   | convoy -n 4                     | {CONVOY} get -n 4 -o {OUT} {URL}
s11      | get   | convoy -n 8                     | {CONVOY} get -n 8 -o {OUT} {URL}
s14      | get   | convoy -n 32                    | {CONVOY} get -n 32 -o {OUT} {URL}
s14big   | big   | convoy -n 16                    | {CONVOY} get -n 16 -o {OUT} {URL}
s14big   | big   | convoy (auto)                   | {CONVOY} get -o {OUT} {URL}
s13      | get   | convoy (auto), fast alone       | {NS} {CONVOY} get -o {OUT} {FAST}
s13      | get   | convoy (auto), slow first       | {NS} {CONVOY} get -o {OUT} {SLOW} {FAST}
s13      | trace | convoy (auto), slow first       | {NS} {CONVOY} get --json -o {OUT} {SLOW} {FAST}
s13      | get   | aria2c -x16 -s16, fast alone    | {NS} aria2c -q -x16 -s16 -k1M -j1 --allow-overwrite=true --file-allocation=none -d {DIR} -o {NAME} {FAST}
s13      | get   | aria2c -x16 -s16, slow first    | {NS} aria2c -q -x16 -s16 -k1M -j1 --allow-overwrite=true --file-allocation=none -d {DIR} -o {NAME} {SLOW} {FAST}
s13      | get   | axel -n 16, fast alone          | {NS} axel -q -n 16 -o {OUT} {FAST}
s13      | get   | axel -n 16, slow first          | {NS} axel -q -n 16 -o {OUT} {SLOW} {FAST}
'
# (lftp 4.9 wants pget's -o after the URL.)

trim() {
  local s=$1
  s=${s#"${s%%[![:space:]]*}"}
  printf '%s' "${s%"${s##*[![:space:]]}"}"
}

T_SC=() T_KIND=() T_LABEL=() T_CMD=()
load_tools() {
  local line sc kind label cmd
  while IFS= read -r line; do
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    IFS='|' read -r sc kind label cmd <<<"$line"
    T_SC+=(" $(trim "$sc") ")
    T_KIND+=("$(trim "$kind")")
    T_LABEL+=("$(trim "$label")")
    T_CMD+=("$(trim "$cmd")")
  done <<<"$TOOLS"
}

# rows SC: the table rows of scenario SC, in table order (restart and trace lines left out).
rows() {
  local i
  for i in "${!T_SC[@]}"; do
    [[ ${T_SC[i]} == *" $1 "* && ${T_KIND[i]} != again && ${T_KIND[i]} != bench && ${T_KIND[i]} != trace ]] && echo "$i"
  done
  return 0
}

# again_cmd I: the restart command of row I (its own command unless an again line exists).
again_cmd() {
  local i
  for i in "${!T_SC[@]}"; do
    if [[ ${T_KIND[i]} == again && ${T_LABEL[i]} == "${T_LABEL[$1]}" ]]; then
      echo "${T_CMD[i]}"
      return
    fi
  done
  echo "${T_CMD[$1]}"
}

# render CMD URL FILE: CMD with its placeholders filled in.
render() {
  local c=$1
  c=${c//'{CONVOY}'/$convoy}
  c=${c//'{REFCOPY}'/$refcopy}
  c=${c//'{NS}'/ip netns exec $ns_name}
  c=${c//'{SLOW}'/http://127.0.0.1:$port_nsslow/256m.bin}
  c=${c//'{FAST}'/http://127.0.0.1:$port_nsfast/256m.bin}
  c=${c//'{URLS}'/$2}
  c=${c//'{URL}'/$2}
  c=${c//'{OUT}'/$out_dir/$out_name}
  c=${c//'{DIR}'/$out_dir}
  c=${c//'{NAME}'/$out_name}
  c=${c//'{FILE}'/$work/www/$3}
  c=${c//'{META4}'/$work/s3.meta4}
  printf '%s' "$c"
}

# ---------------------------------------------------------------- processes

bg_pids=()
forget() {
  local keep=() p
  for p in "${bg_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  bg_pids=("${keep[@]}")
}

cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ -n "${nginx_pid:-}" ]; then
    kill "$nginx_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  ns_down
}

need() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v curl >/dev/null || missing+=(curl)
  command -v aria2c >/dev/null || missing+=(aria2)
  command -v axel >/dev/null || missing+=(axel)
  command -v lftp >/dev/null || missing+=(lftp)
  [ -x /usr/bin/time ] || missing+=(time)
  command -v tc >/dev/null || missing+=(iproute2)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  command -v go >/dev/null || { echo "bench: go is needed to build convoy" >&2; exit 1; }
}

# busy PORT: true when something on 127.0.0.1 accepts on PORT.
busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A parallel fuzzer distorts every timing: wait for it to end, BENCH_FUZZ_WAIT
# seconds at most (default 2400; 0 does not wait).
fuzz_wait=0 fuzz_note='' built_from=unknown built_dirty=''
wait_quiet() {
  local t0=$SECONDS max=${BENCH_FUZZ_WAIT:-2400}
  while pgrep -f 'test.fuzz' >/dev/null && [ $((SECONDS - t0)) -lt "$max" ]; do
    [ $((SECONDS - t0)) -eq 0 ] && echo "bench: a fuzzer is running; waiting ($max s at most)" >&2
    sleep 20
  done
  fuzz_wait=$((SECONDS - t0))
  if pgrep -f 'test.fuzz' >/dev/null; then
    echo "bench: a fuzzer is still running; measuring anyway" >&2
    fuzz_note="; a fuzzer was still running when the measurements began"
  fi
}

setup() {
  need
  mkdir -p "$work"/{www,www-other,logs,tmp,bin,corrupt} "$out_dir"
  if [ -f "$work/nginx.pid" ] && kill -0 "$(cat "$work/nginx.pid")" 2>/dev/null; then
    echo "bench: an nginx of another run uses $work (pid $(cat "$work/nginx.pid")); set BENCH_WORK" >&2
    exit 1
  fi
  local p
  for p in "$port_fast" "$port_cap" "$port_slow" "$port_proxy"; do
    if busy "$p"; then
      echo "bench: 127.0.0.1:$p is in use; set BENCH_PORT to the first of four free ports" >&2
      exit 1
    fi
  done
  if ip netns list 2>/dev/null | grep -qx "$ns_name\( .*\)\{0,1\}"; then
    echo "bench: the network namespace $ns_name exists (another run, or one that was killed:" >&2
    echo "bench: ip netns pids $ns_name; ip netns del $ns_name); or set BENCH_PORT" >&2
    exit 1
  fi
  for p in 11 12 13 14 15 16; do
    if (exec 3<>"/dev/tcp/127.0.0.$p/$port_fast") 2>/dev/null; then
      echo "bench: 127.0.0.$p:$port_fast is in use; set BENCH_PORT" >&2
      exit 1
    fi
  done
  [ -f "$work/www/1g.bin" ] || head -c 1G /dev/urandom >"$work/www/1g.bin"
  [ -f "$work/www/256m.bin" ] || head -c 256M /dev/urandom >"$work/www/256m.bin"
  [ -f "$work/www/256m-other.bin" ] || head -c 256M /dev/urandom >"$work/www/256m-other.bin"
  ln -f "$work/www/256m-other.bin" "$work/www-other/256m.bin" # the bad mirror's file, same path
  (cd "$work/www" && sha256sum 1g.bin 256m.bin >"$work/sums")
  wait_quiet # before the build, so the binary is the tree as measured
  local try
  for try in 1 2 3; do # others may be editing the tree: a broken build gets two more tries
    built_from=$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo unknown)
    built_dirty=$(git -C "$root" status --short -- '*.go' 2>/dev/null | awk '{print $2}' | grep -v '^bench/' | paste -sd' ' || true)
    (cd "$root" && go build -ldflags "-X github.com/convoy-dl/convoy.Version=$built_from" -o "$convoy" ./cmd/convoy) && break
    [ "$try" = 3 ] && { echo "bench: convoy does not build" >&2; exit 1; }
    sleep 20
  done
  (cd "$root" && go build -o "$faultproxy" ./bench/faultproxy && go build -o "$refcopy" ./bench/refcopy)
  sed -e "s|@WORK@|$work|g" -e "s|@PORT_FAST@|$port_fast|" -e "s|@PORT_CAP@|$port_cap|" \
    -e "s|@PORT_SLOW@|$port_slow|" "$here/nginx.conf.in" >"$work/nginx.conf"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  rm -f "$work/nginx.pid"
  nginx -c "$work/nginx.conf"
  for _ in $(seq 1 50); do
    [ -s "$work/nginx.pid" ] && break
    sleep 0.1
  done
  nginx_pid=$(cat "$work/nginx.pid")
  for _ in $(seq 1 50); do
    if curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$port_fast/256m.bin"; then
      return
    fi
    sleep 0.1
  done
  echo "bench: nginx did not start" >&2
  exit 1
}

# ---------------------------------------------------------------- measuring

# sent LOG: body bytes nginx logged, once the sum has stopped changing (4 s at most).
sent() {
  local prev=-1 cur=0 still=0
  for _ in $(seq 1 40); do
    cur=$(awk '{s += $3} END {printf "%.0f\n", s}' "$1")
    if [ "$cur" = "$prev" ]; then
      still=$((still + 1))
      [ "$still" -ge 2 ] && break
    else
      still=0
    fi
    prev=$cur
    sleep 0.1
  done
  echo "$cur"
}

want_sum() { awk -v n="$1" '$2 == n {print $1}' "$work/sums"; }

# fresh LOG: a clean output folder, quiet disk, empty access log. Outside timing.
fresh() {
  rm -rf "${out_dir:?}"/* "$out_dir"/.[!.]* 2>/dev/null || true
  sync # no tool pays for another's dirty pages
  : >"$1"
}

corrupt=() # runs whose file did not match: any makes the harness fail

# check KIND FILE TAG: sets R_STATUS to CORRUPT when the output is not FILE byte for byte
# (kind big: when check_sampled finds a difference).
check() {
  [ "$1" = limit ] && return
  [ "$1" = big ] && { check_sampled "$2" "$3"; return; }
  local got want
  want=$(want_sum "$2")
  got=$(sha256sum "$out_dir/$out_name" 2>/dev/null | cut -d' ' -f1 || true)
  if [ "$got" != "$want" ]; then
    R_STATUS=CORRUPT
    mv "$out_dir/$out_name" "$work/corrupt/$3.bin" 2>/dev/null || true
    corrupt+=("$3: sha256 ${got:-none}, want $want (kept as $work/corrupt/$3.bin)")
    echo "bench: CORRUPT output: $3" >&2
  fi
}

# timed I URL FILE LOG TAG: one timed run of row I. Sets R_WALL (s), R_CPU (user+sys s),
# R_RSS (peak KiB) and R_STATUS (ok, "did not finish", "failed (exit N)", CORRUPT).
timed() {
  local i=$1 cmd tf="$work/time.txt" t0 t1 tp rc=0
  cmd=$(render "${T_CMD[i]}" "$2" "$3")
  fresh "$4"
  rm -f "$tf"
  t0=$(date +%s%N)
  timeout -k 5 "$limit" /usr/bin/time -v -o "$tf" bash -c "exec $cmd" >"$work/logs/tool.out" 2>&1 &
  tp=$!
  bg_pids+=("$tp")
  wait "$tp" || rc=$?
  t1=$(date +%s%N)
  forget "$tp"
  R_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", (b - a) / 1e9}')
  read -r R_CPU R_RSS < <(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2}
    /Maximum resident set size/ {m = $2} END {printf "%.2f %d\n", u + s, m}' "$tf" 2>/dev/null || echo "0 0")
  if [ "$rc" -eq 0 ]; then
    R_STATUS=ok
    check "${T_KIND[i]}" "$3" "$5"
  elif [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ $(((t1 - t0) / 1000000000)) -ge "$limit" ]; }; then
    R_STATUS="did not finish in ${limit} s"
  else
    R_STATUS=$(failure "$rc")
  fi
}

# failure RC: how a run that exited RC failed, with the end of its output.
failure() {
  local why="exit $1" tail
  [ "$1" -gt 128 ] && why="killed by SIG$(kill -l $(($1 - 128)) 2>/dev/null || echo '?'), exit $1"
  tail=$(tail -c 160 "$work/logs/tool.out" | tr -s '\n\t' '  ' | sed 's/|/\\|/g')
  echo "failed ($why)${tail:+: $tail}"
}

# Per-key results: space-separated lists of the successful runs' numbers.
declare -A K_WALL K_CPU K_RSS K_SENT K_RUNS K_OK K_NOTE K_SKIP K_EXTRA
declare -A K_KILL # S4: KEY/N, the bytes sent twice attributed to kill N, per successful run
record() { # KEY RUN: files the R_* of this run under KEY
  local k=$1
  K_RUNS[$k]=$((${K_RUNS[$k]:-0} + 1))
  if [ "$R_STATUS" = ok ]; then
    K_OK[$k]=$((${K_OK[$k]:-0} + 1))
    K_WALL[$k]+="$R_WALL "
    K_CPU[$k]+="$R_CPU "
    K_RSS[$k]+="$R_RSS "
    K_SENT[$k]+="$R_SENT "
  else
    K_NOTE[$k]+="run $2: $R_STATUS; "
    [[ $R_STATUS == "did not finish"* ]] && K_SKIP[$k]=1 # bounded: one timeout is enough
  fi
  return 0
}

# stats LIST: "median min max" of the numbers in LIST, or nothing.
stats() {
  tr -s ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{a[NR] = $1}
    END {if (NR) printf "%.15g %.15g %.15g\n", (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2), a[1], a[NR]}'
}
imedian() { median "$1" | awk '{printf "%.0f\n", $1}'; } # bytes: a whole number
median() { stats "$1" | awk '{print $1}'; }
maxof() { stats "$1" | awk '{print $3}'; }

progress() { printf '%-4s run %s  %-40s %8.3f s  %s\n' "$1" "$2" "$3" "$R_WALL" "$R_STATUS" >&2; }

# row_cells KEY SIZE REF_MEDIAN: the cells runs ok | wall | MiB/s | ratio | CPU | RSS.
row_cells() {
  local k=$1 size=$2 ref=$3 w c r
  w=$(stats "${K_WALL[$k]:-}")
  if [ -z "$w" ]; then
    printf '%s/%s | – | – | – | – | –' "${K_OK[$k]:-0}" "${K_RUNS[$k]:-0}"
    return
  fi
  c=$(median "${K_CPU[$k]}")
  r=$(maxof "${K_RSS[$k]}")
  awk -v w="$w" -v ok="${K_OK[$k]:-0}" -v n="${K_RUNS[$k]:-0}" -v size="$size" -v ref="$ref" \
    -v c="$c" -v r="$r" 'BEGIN {
      split(w, a, " ")
      printf "%d/%d | %.3f (%.3f–%.3f) | %.1f | %s | %.2f | %.1f", ok, n, a[1], a[2], a[3],
        size / 1048576 / a[1], (ref > 0 ? sprintf("%.2f", a[1] / ref) : "–"), c, r / 1024
    }'
}

# own_account KEY RUN OVER: files convoy's closing summary of this run (connections,
# retries, bytes fetched twice, answers cut short) with OVER, the bytes the server sent
# beyond the file; the bytes in a socket's buffers when convoy closes it count as sent.
declare -A K_SAYS
own_account() {
  local says limits
  says=$(sed -n 's/^convoy: saved .* (\(.*\))$/\1/p' "$work/logs/tool.out" | tail -n 1)
  limits=$(sed -n 's/^convoy: \(server .* accepts .*\)$/"\1"/p' "$work/logs/tool.out" | paste -sd' ' -)
  [ -n "$limits" ] && says+="; said $limits"
  [ -n "$says" ] && K_SAYS[$1]+="run $2: $says; server sent +$3; "
  return 0
}
accounts_block() { # SC I...: convoy's own summary of each run of rows I of SC, if any
  local sc=$1 i any
  shift
  any=$(for i in "$@"; do
    if [ -n "${K_SAYS[$sc/$i]:-}" ]; then echo "- ${T_LABEL[i]}: ${K_SAYS[$sc/$i]%; }"; fi
  done)
  [ -z "$any" ] || printf "convoy's own summary of each run (the last line it prints):\n\n%s\n\n" "$any"
  return 0
}

notes() { # KEY LABEL: failure notes of KEY as a list item
  [ -n "${K_NOTE[$1]:-}" ] && echo "- $2: ${K_NOTE[$1]%; }"
  return 0
}
notes_block() { # SC I...: the failure notes of rows I of SC, if any, and a blank line
  local sc=$1 i any
  shift
  any=$(for i in "$@"; do notes "$sc/$i" "${T_LABEL[i]}"; done)
  [ -z "$any" ] || printf 'Runs that did not count:\n\n%s\n\n' "$any"
}

# ---------------------------------------------------------------- scenarios

# simple SC PORT FILE LOG RUNS TITLE [IDEAL]: every row of SC in turn, RUNS times;
# the ratio is to IDEAL seconds when given, else to the row of kind ref.
simple() {
  local sc=$1 url="http://127.0.0.1:$2/$3" file=$3 log=$4 runs=$5 title=$6 ideal=${7:-}
  local size i r ref refname k
  local -a idx
  size=$(stat -c %s "$work/www/$file")
  mapfile -t idx < <(rows "$sc")
  for r in $(seq 1 "$runs"); do
    for i in "${idx[@]}"; do
      k="$sc/$i"
      [ -n "${K_SKIP[$k]:-}" ] && continue
      timed "$i" "$url" "$file" "$log" "$sc-$i-run$r"
      R_SENT=$(sent "$log")
      record "$k" "$r"
      own_account "$k" "$r" "$((R_SENT - size))"
      progress "$sc" "$r/$runs" "${T_LABEL[i]}"
    done
  done
  if [ -n "$ideal" ]; then
    ref=$ideal refname="ideal ($ideal s)"
  else
    for i in "${idx[@]}"; do
      [ "${T_KIND[i]}" = ref ] && { ref=$(median "${K_WALL[$sc/$i]:-}"); refname=${T_LABEL[i]}; }
    done
  fi
  echo "### $title"
  echo
  echo "| tool | runs ok | wall s, median (min–max) | MiB/s | ratio to $refname | CPU s (user+sys) | peak RSS MiB | server sent, bytes (over file size) |"
  echo "|---|---|---|---|---|---|---|---|"
  for i in "${idx[@]}"; do
    k="$sc/$i"
    local s
    s=$(imedian "${K_SENT[$k]:-}")
    if [ "${T_CMD[i]}" != "${T_CMD[i]#dd }" ] || [ -z "$s" ] || [ "$s" = 0 ]; then
      s="–"
    else
      s="$s (+$((s - size)))"
    fi
    echo "| ${T_LABEL[i]} | $(row_cells "$k" "$size" "${ref:-0}") | $s |"
  done
  echo
  accounts_block "$sc" "${idx[@]}"
  notes_block "$sc" "${idx[@]}"
}

s1() {
  simple s1 "$port_fast" 1g.bin "$work/logs/fast.log" "$1" \
    "S1: 1 GiB from nginx on loopback, unthrottled, to disk"
  echo "Ratio: median wall over the median of \`curl -o\`. Limit rows: \`curl -o /dev/null\` is the network"
  echo "alone, \`dd\` to /dev/null the server's page cache alone. The rest measure the disk: \`dd\` with"
  echo "conv=fdatasync writes through the page cache and waits for the disk, as convoy does at its end; \`dd\`"
  echo "with O_DIRECT writes straight through, in one stream and in 16 at once (64 MiB each); \`refcopy\`"
  echo "(bench/refcopy) is the least a durable 16-connection downloader does: fallocate, 16 ranges written"
  echo "with WriteAt, sync_file_range of every finished 8 MiB, one fdatasync; no manifest, no retries."
  echo "\`curl\`, \`aria2c\`, \`axel\` and \`lftp\` leave the bytes in the page cache and exit before the"
  echo "disk has them."
  local c d k r
  c=$(median "$(walls_of s1 'convoy -n 16')") d=$(median "$(walls_of s1 '16 dd to disk at once, O_DIRECT')")
  k=$(median "$(walls_of s1 'curl -o')") r=$(median "$(walls_of s1 'refcopy -n 16 (16 ranges, fdatasync)')")
  if [ -n "$c" ] && [ -n "$d" ] && [ -n "$k" ] && [ -n "$r" ]; then
    echo
    awk -v c="$c" -v d="$d" -v k="$k" -v r="$r" 'BEGIN {
      printf "The target, 0.6 x curl -o = %.3f s with the final fsync, needs the disk to take %.0f MiB/s. ", 0.6 * k, 1024 / (0.6 * k)
      printf "Here 16 dd with O_DIRECT got %.0f MiB/s, and refcopy took %.2f x curl -o. ", 1024 / d, r / k
      printf "convoy over refcopy: %.3f / %.3f = %.2f; over 16 dd with O_DIRECT: %.2f.\n", c, r, c / r, c / d }'
  fi
  echo
}

# walls_of SC LABEL: the wall times recorded for the tool LABEL in SC.
walls_of() {
  local i
  for i in $(rows "$1"); do
    [ "${T_LABEL[i]}" = "$2" ] && { echo "${K_WALL[$1/$i]:-}"; return; }
  done
}

s2() {
  simple s2 "$port_cap" 256m.bin "$work/logs/cap.log" "$1" \
    "S2: 256 MiB, 5 MiB/s per connection (limit_rate 5m, sendfile_max_chunk 64k), 16 connections" 3.2
  echo "Ideal: 256 MiB / (16 × 5 MiB/s) = 3.2 s; ratio is median wall over that."
  echo
}

s8() {
  simple s8 "$port_fast" 1g.bin "$work/logs/fast.log" "$1" \
    "S8: durability cost, S1 with convoy as shipped (checkpoints every 250 ms) against --checkpoint-interval 1h"
  local a b i
  for i in $(rows s8); do
    if [ "${T_KIND[i]}" = ref ]; then a=$(median "${K_WALL[s8/$i]:-}"); else b=$(median "${K_WALL[s8/$i]:-}"); fi
  done
  if [ -n "${a:-}" ] && [ -n "${b:-}" ]; then
    awk -v a="$a" -v b="$b" 'BEGIN {printf "Ratio of medians, shipped / 1h: %.3f / %.3f = %.2f. With 1h the only checkpoint is the final one.\n\n", a, b, a / b}'
  fi
}

# kill_waste LOG SIZE PATH N1 N2 N3: "W1 W2 W3 SAME OTHER MISSING SENT", bytes, from S4's
# access LOG, whose lines 1..N1 are start 1's, N1+1..N2 start 2's, N2+1..N3 start 3's and
# the rest start 4's. Each answer of PATH is the file's bytes [lo, lo + $body_bytes_sent):
# lo = 0 for a 200, the first byte of "bytes=a-b", "bytes=a-" or "bytes=-n" for a 206.
# Wk: bytes that start k got and a later start got again, the copies kill k lost (a byte
# that starts 1, 2 and 4 got counts at kills 1 and 2); SAME: the further copies of a byte
# within one start; OTHER: body bytes that are not the file's (other paths or
# statuses, multipart answers); MISSING: bytes of the file no start got; SENT: all body
# bytes. SENT - SIZE = W1 + W2 + W3 + SAME + OTHER - MISSING, exactly.
kill_waste() {
  local log=$1 size=$2 path=$3
  shift 3
  awk -v size="$size" -v path="$path" -v b="$*" '
    BEGIN {nb = split(b, bound, " ")}
    {
      s = 1
      while (s <= nb && NR > bound[s]) s++
      n = $3 + 0
      if (n == 0) next
      uri = $1
      sub(/\?.*/, "", uri)
      r = tolower($4)
      gsub(/[" ]/, "", r)
      lo = -1
      if (uri == path && $2 == 200) {
        lo = 0
      } else if (uri == path && $2 == 206 && r ~ /^bytes=[0-9]+-[0-9]*$/) {
        sub(/^bytes=/, "", r)
        split(r, a, "-")
        lo = a[1] + 0
      } else if (uri == path && $2 == 206 && r ~ /^bytes=-[0-9]+$/) {
        lo = size - substr(r, 8)
        if (lo < 0) lo = 0
      }
      if (lo < 0) other += n
      else printf "%.0f %d 1\n%.0f %d -1\n", lo, s, lo + n, s
    }
    END {printf "-1 %.0f %d\n", other, nb + 1}' "$log" | sort -k1,1n |
    awk -v size="$size" '
      $1 < 0 {other = $2; ns = $3; next}
      {
        if (seen && $1 > pos) { # the segment [pos, $1): which starts hold it, how often
          len = $1 - pos
          held = 0
          for (k = 1; k <= ns; k++) if (c[k] > 0) { held++; same += (c[k] - 1) * len }
          if (held) covered += len
          for (k = 1; k < ns; k++) {
            if (c[k] <= 0) continue
            for (j = k + 1; j <= ns; j++) if (c[j] > 0) { w[k] += len; break }
          }
        }
        seen = 1
        pos = $1
        c[$2] += $3
        file += ($3 > 0 ? -$1 : $1) # the sum of hi - lo
      }
      END {printf "%.0f %.0f %.0f %.0f %.0f %.0f %.0f\n", w[1], w[2], w[3], same, other, size - covered, file + other}'
}

# S4: per tool, start, kill -9 after 3 s of running time, start again, kill
# after 4 more (7 s of running time in all), again after 4 more (11 s), then
# run to the end. The time between a kill and the next start is not counted.
# After each kill (or early exit) the access log's line count marks the end of
# that start's answers, for the bytes sent twice per kill (kill_waste).
s4() {
  local runs=$1 url="http://127.0.0.1:$port_slow/256m.bin" log="$work/logs/slow.log"
  local size i r k at prev pid first again t0 t1 rc tp twice cmd n
  local w1 w2 w3 same other missing all split
  local -a idx bounds
  size=$(stat -c %s "$work/www/256m.bin")
  mapfile -t idx < <(rows s4)
  for r in $(seq 1 "$runs"); do
    for i in "${idx[@]}"; do
      k="s4/$i"
      first=$(render "${T_CMD[i]}" "$url" 256m.bin)
      again=$(render "$(again_cmd "$i")" "$url" 256m.bin)
      fresh "$log"
      prev=0
      bounds=()
      K_EXTRA[$k]+="run $r:"
      for at in 3 7 11; do
        [ "$at" = 3 ] && cmd=$first || cmd=$again
        bash -c "exec $cmd" >>"$work/logs/tool.out" 2>&1 &
        pid=$!
        bg_pids+=("$pid")
        sleep $((at - prev))
        if kill -0 "$pid" 2>/dev/null; then
          kill -9 "$pid" 2>/dev/null || true
          { wait "$pid"; } 2>/dev/null || true
          K_EXTRA[$k]+=" $(($(sent "$log") / MiB)) MiB sent by ${at}s,"
        else
          { wait "$pid"; } 2>/dev/null && rc=0 || rc=$?
          sent "$log" >/dev/null # every answer of this start logged
          K_EXTRA[$k]+=" exited (status $rc) before the kill at ${at}s,"
        fi
        n=$(wc -l <"$log")
        bounds+=("$n")
        forget "$pid"
        prev=$at
      done
      rc=0
      t0=$(date +%s%N)
      timeout -k 5 "$limit" bash -c "exec $again" >"$work/logs/tool.out" 2>&1 &
      tp=$!
      bg_pids+=("$tp")
      wait "$tp" || rc=$?
      t1=$(date +%s%N)
      forget "$tp"
      R_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", (b - a) / 1e9}')
      R_CPU=0 R_RSS=0
      if [ "$rc" -eq 0 ]; then
        R_STATUS=ok
        check get 256m.bin "s4-$i-run$r"
      elif [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ $(((t1 - t0) / 1000000000)) -ge "$limit" ]; }; then
        R_STATUS="did not finish in ${limit} s after the last start"
      else
        R_STATUS=$(failure "$rc")
      fi
      R_SENT=$(sent "$log")
      twice=$((R_SENT - size))
      read -r w1 w2 w3 same other missing all < <(kill_waste "$log" "$size" /256m.bin "${bounds[@]}")
      split="$w1 + $w2 + $w3 at kills 1, 2, 3"
      [ "$same" = 0 ] || split+=" + $same twice within one start"
      [ "$other" = 0 ] || split+=" + $other not the file's"
      [ "$missing" = 0 ] || split+=" - $missing never sent"
      [ "$all" = "$R_SENT" ] || split+=" (from a log of $all bytes: it changed while read)"
      K_EXTRA[$k]+=" $R_SENT in all, $twice twice = $split, last start ran $R_WALL s, $R_STATUS; "
      record "$k" "$r"
      if [ "$R_STATUS" = ok ]; then
        K_KILL[$k/1]+="$w1 " K_KILL[$k/2]+="$w2 " K_KILL[$k/3]+="$w3 "
      fi
      progress s4 "$r/$runs" "${T_LABEL[i]}"
    done
  done
  echo "### S4: kill -9 and resume: 256 MiB, 2 MiB/s per connection (limit_rate 2m), 8 connections"
  echo
  echo "| tool | runs ok (sha256 checked) | bytes sent twice, median (min–max) | MiB sent twice, median | MiB twice at kill 1, median | at kill 2 | at kill 3 | worst kill, MiB (max over runs) | last start to done, s, median |"
  echo "|---|---|---|---|---|---|---|---|---|"
  local t w per
  for i in "${idx[@]}"; do
    k="s4/$i"
    t=$(stats "$(for s in ${K_SENT[$k]:-}; do echo $((s - size)); done)")
    w=$(median "${K_WALL[$k]:-}")
    per="$(median "${K_KILL[$k/1]:-}") $(median "${K_KILL[$k/2]:-}") $(median "${K_KILL[$k/3]:-}")"
    per+=" $(maxof "${K_KILL[$k/1]:-} ${K_KILL[$k/2]:-} ${K_KILL[$k/3]:-}")"
    if [ -z "$t" ]; then
      echo "| ${T_LABEL[i]} | ${K_OK[$k]:-0}/${K_RUNS[$k]:-0} | – | – | – | – | – | – | – |"
    else
      awk -v t="$t" -v w="$w" -v p="$per" -v l="${T_LABEL[i]}" -v ok="${K_OK[$k]:-0}" -v n="${K_RUNS[$k]:-0}" 'BEGIN {
        split(t, a, " "); split(p, q, " ")
        printf "| %s | %d/%d | %.0f (%.0f–%.0f) | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f |\n", l, ok, n, a[1], a[2], a[3],
          a[1] / 1048576, q[1] / 1048576, q[2] / 1048576, q[3] / 1048576, q[4] / 1048576, w }'
    fi
  done
  echo
  echo "Kills after 3, 7 and 11 s of running time (the gaps between a kill and the next start are not counted)."
  echo "Bytes sent twice: the sum of \$body_bytes_sent in nginx's log over all four starts, minus the file size."
  echo "Per kill: each answer in the log is a range of the file (from \$http_range and \$body_bytes_sent; the lines"
  echo "logged before a kill, once the log stopped growing, are that start's); twice at kill k = the bytes start k"
  echo "got that a later start got again. A byte got three times counts at both earlier kills; copies of a byte"
  echo "within one start count at no kill. Per run, the notes give the total as the sum of its parts, in bytes."
  echo
  for i in "${idx[@]}"; do
    echo "- ${T_LABEL[i]}: ${K_EXTRA[s4/$i]%; }"
  done
  echo
  for i in "${idx[@]}"; do
    [[ ${T_LABEL[i]} == convoy* ]] || continue
    awk -v l="${T_LABEL[i]}" -v w="$(maxof "${K_KILL[s4/$i/1]:-} ${K_KILL[s4/$i/2]:-} ${K_KILL[s4/$i/3]:-}")" 'BEGIN {
      printf "Target for %s: at most 4 MiB sent twice at each kill. Measured: ", l
      if (w == "") {printf "no run succeeded: **not met**.\n\n"; exit}
      printf "the worst kill of all runs %.1f MiB (%.0f bytes): **%s**.\n\n", w / 1048576, w, (w <= 4194304 ? "met" : "not met") }'
  done
  notes_block s4 "${idx[@]}"
}

proxy_pid=
proxy_start() { # RESET(true|false)
  "$faultproxy" -listen "127.0.0.1:$port_proxy" -to "127.0.0.1:$port_cap" -seed "$seed" \
    -reset="$1" -lifetime 10m >"$work/logs/proxy.out" 2>"$work/logs/proxy.err" &
  proxy_pid=$!
  bg_pids+=("$proxy_pid")
  for _ in $(seq 1 50); do
    grep -q listening "$work/logs/proxy.out" 2>/dev/null && return
    sleep 0.1
  done
  echo "bench: the fault proxy did not start: $(cat "$work/logs/proxy.err")" >&2
  exit 1
}
proxy_stop() { # prints the number of resets
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
  forget "$proxy_pid"
  sed -n 's/.* \([0-9]*\) resets$/\1/p' "$work/logs/proxy.err"
}

# S7: each tool through the fault proxy, with and without resets, in turn. A
# fresh proxy with the same seed per run: every run meets the same sequence of
# limits, connection by connection in accept order.
s7() {
  local runs=$1 url="http://127.0.0.1:$port_proxy/256m.bin" log="$work/logs/cap.log"
  local size i r k mode resets
  local -a idx
  size=$(stat -c %s "$work/www/256m.bin")
  mapfile -t idx < <(rows s7)
  for r in $(seq 1 "$runs"); do
    for i in "${idx[@]}"; do
      for mode in false true; do
        k="s7/$i/$mode"
        [ -n "${K_SKIP[$k]:-}" ] && continue
        proxy_start "$mode"
        timed "$i" "$url" 256m.bin "$log" "s7-$i-reset_$mode-run$r"
        resets=$(proxy_stop)
        R_SENT=$(sent "$log")
        [ "$R_STATUS" = ok ] && K_EXTRA[$k]+="${resets:-0} "
        record "$k" "$r"
        own_account "$k" "$r" "$((R_SENT - size))"
        progress s7 "$r/$runs" "${T_LABEL[i]} resets=$mode"
      done
    done
  done
  echo "### S7: flaky link: S2 behind a proxy that resets every connection (TCP RST) after a random 4–16 MiB"
  echo
  echo "| tool | link | runs ok | wall s, median (min–max) | MiB/s | ratio to no resets | CPU s (user+sys) | peak RSS MiB | bytes sent twice, median | resets, median |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  local ref s t
  for i in "${idx[@]}"; do
    ref=$(median "${K_WALL[s7/$i/false]:-}")
    for mode in false true; do
      k="s7/$i/$mode"
      s=$(imedian "${K_SENT[$k]:-}")
      [ -n "$s" ] && s=$((s - size)) || s="–"
      t=$(imedian "${K_EXTRA[$k]:-}")
      if [ "$mode" = false ]; then
        echo "| ${T_LABEL[i]} | no resets | $(row_cells "$k" "$size" 0) | $s | ${t:-–} |"
      else
        echo "| ${T_LABEL[i]} | resets | $(row_cells "$k" "$size" "${ref:-0}") | $s | ${t:-–} |"
      fi
    done
  done
  echo
  echo "Proxy: bench/faultproxy, seed $seed, one fresh proxy per run; runs bounded to $limit s (a tool that times out is not run again)."
  echo
  for i in "${idx[@]}"; do
    [[ ${T_LABEL[i]} == convoy* ]] || continue
    awk -v l="${T_LABEL[i]}" -v w="$(maxof "$(for s in ${K_SENT[s7/$i/true]:-}; do echo $((s - size)); done)")" 'BEGIN {
      printf "Target for %s: at most 1 MiB sent twice in each run with resets. Measured: ", l
      if (w == "") {printf "no run succeeded: **not met**.\n\n"; exit}
      printf "the worst run %.2f MiB (%.0f bytes): **%s**.\n\n", w / 1048576, w, (w <= 1048576 ? "met" : "not met") }'
  done
  local any
  any=$(for i in "${idx[@]}"; do for mode in false true; do
    if [ -n "${K_SAYS[s7/$i/$mode]:-}" ]; then
      echo "- ${T_LABEL[i]}, $([ "$mode" = true ] && echo resets || echo no resets): ${K_SAYS[s7/$i/$mode]%; }"
    fi
  done; done)
  [ -z "$any" ] || printf "convoy's own summary of each run (the last line it prints):\n\n%s\n\n" "$any"
  any=$(for i in "${idx[@]}"; do
    notes "s7/$i/false" "${T_LABEL[i]}, no resets"
    notes "s7/$i/true" "${T_LABEL[i]}, resets"
  done)
  [ -z "$any" ] || printf 'Runs that did not count:\n\n%s\n\n' "$any"
}

# S3: three mirrors of one file at 1, 2 and 4 MiB/s per connection, at most 4
# connections each (limit_conn, 503 beyond); S3b adds a bad mirror that serves
# another file of the same size at 8 MiB/s; one `convoy bench` ranks the three.
m_url() { echo "http://127.0.0.$1:$port_fast/256m.bin"; }
m_logs() { local m; for m in "$@"; do echo "$work/logs/m$m.log"; done; }
s3_sc() { # SC RUNS IDEAL LOG_NUMBERS...: run every row of SC, RUNS times, on the mirrors
  local sc=$1 runs=$2 ideal=$3 size i r k l s n urls=''
  shift 3
  local -a idx logs
  mapfile -t logs < <(m_logs "$@")
  for n in "$@"; do urls+="$(m_url "1$n") "; done
  urls=${urls% }
  size=$(stat -c %s "$work/www/256m.bin")
  mapfile -t idx < <(rows "$sc")
  for r in $(seq 1 "$runs"); do
    for i in "${idx[@]}"; do
      k="$sc/$i"
      [ -n "${K_SKIP[$k]:-}" ] && continue
      for l in "${logs[@]}"; do : >"$l"; done
      timed "$i" "$urls" 256m.bin "${logs[0]}" "$sc-$i-run$r"
      s=0 n=0
      for l in "${logs[@]}"; do
        s=$((s + $(sent "$l")))
        n=$((n + $(awk '$2 == 503' "$l" | wc -l)))
      done
      R_SENT=$s
      K_EXTRA[$k]+="$n "
      record "$k" "$r"
      own_account "$k" "$r" "$((R_SENT - size))"
      progress "$sc" "$r/$runs" "${T_LABEL[i]} ($n answers of 503)"
    done
  done
  echo "| tool | runs ok (sha256 right) | wall s, median (min–max) | ratio to ideal ($ideal s) | 503 answers, median (min–max) | server sent, bytes, median (over file size) |"
  echo "|---|---|---|---|---|---|"
  local w e
  for i in "${idx[@]}"; do
    k="$sc/$i"
    w=$(stats "${K_WALL[$k]:-}")
    e=$(stats "${K_EXTRA[$k]:-}")
    s=$(imedian "${K_SENT[$k]:-}")
    [ -n "$s" ] && s="$s (+$((s - size)))" || s="–"
    awk -v w="$w" -v e="$e" -v ideal="$ideal" -v l="${T_LABEL[i]}" -v ok="${K_OK[$k]:-0}" \
      -v n="${K_RUNS[$k]:-0}" -v s="$s" 'BEGIN {
        split(w, a, " "); split(e, b, " ")
        printf "| %s | %d/%d | %s | %s | %s | %s |\n", l, ok, n,
          (w == "" ? "–" : sprintf("%.3f (%.3f–%.3f)", a[1], a[2], a[3])),
          (w == "" ? "–" : sprintf("%.2f", a[1] / ideal)),
          (e == "" ? "–" : sprintf("%d (%d–%d)", b[1], b[2], b[3])), s }'
  done
  echo
  echo "503 answers and bytes: counted in the access logs of all the servers of the run, failed runs included in the 503 column."
  echo
  accounts_block "$sc" "${idx[@]}"
  notes_block "$sc" "${idx[@]}"
}

s3m() {
  local runs=$1 n sum
  sum=$(sha256sum "$work/www/256m.bin" | cut -d' ' -f1)
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo '<metalink xmlns="urn:ietf:params:xml:ns:metalink">'
    echo "  <file name=\"$out_name\">"
    echo "    <size>$(stat -c %s "$work/www/256m.bin")</size>"
    echo "    <hash type=\"sha-256\">$sum</hash>"
    for n in 1 2 3; do echo "    <url priority=\"$n\">$(m_url "1$n")</url>"; done
    echo '  </file>'
    echo '</metalink>'
  } >"$work/s3.meta4"
  echo "### S3m: S3 with the three mirrors named only in a Metalink (size, sha-256, three URLs)"
  echo
  s3_sc s3m "$runs" 9.14 1 2 3
  echo "Ideal as S3: 9.14 s. axel reads no Metalink. The file's name is the Metalink's, so the commands give no -o to aria2c."
  echo
}

s3() {
  local runs=$1 i cmd rank want got
  echo "### S3: 256 MiB from three mirrors (127.0.0.11, .12, .13) at 1, 2 and 4 MiB/s per connection (limit_rate, sendfile_max_chunk 64k), at most 4 connections each (limit_conn, 503 beyond)"
  echo
  s3_sc s3 "$runs" 9.14 1 2 3
  echo "Ideal: 256 MiB / (4 × (1 + 2 + 4) MiB/s) = 9.14 s."
  echo
  echo "### S3b: S3 plus a bad mirror (127.0.0.14, 8 MiB/s, 4 connections) serving a different random file of the same size under the same path"
  echo
  s3_sc s3b "$runs" 9.14 1 2 3 4
  echo "Right: the output's SHA-256 is the good file's (the bad mirror was dropped); a wrong one counts as CORRUPT and fails the harness."
  echo
  for i in "${!T_SC[@]}"; do
    [[ ${T_SC[i]} == *" s3 "* && ${T_KIND[i]} == bench ]] || continue
    cmd=$(render "${T_CMD[i]}" "$(m_url 11) $(m_url 12) $(m_url 13)" 256m.bin)
    echo "### S3: \`convoy bench\` ranking of the three mirrors (run once)"
    echo
    if timeout -k 5 "$limit" bash -c "exec $cmd" >"$work/s3-bench.json" 2>"$work/logs/bench.err"; then
      rank=$(grep -o '"url": *"[^"]*"' "$work/s3-bench.json" | sed 's/.*"\(http[^"]*\)"/\1/' | paste -sd' ')
      want="$(m_url 13) $(m_url 12) $(m_url 11)"
      [ "$rank" = "$want" ] && got=yes || got=no
      echo "| command | ranking, fastest first | 4 > 2 > 1 MiB/s |"
      echo "|---|---|---|"
      echo "| \`$(trim "${T_CMD[i]}")\` | ${rank// / > } | $got |"
      echo
      echo "Parallel throughput per mirror (bytes/s): $(grep -o '"parallel_bytes_per_s": *[0-9.e+]*' "$work/s3-bench.json" | awk '{printf "%s%.0f", (NR > 1 ? ", " : ""), $2}')."
    else
      echo "convoy bench failed: $(tail -c 200 "$work/logs/bench.err" | tr -s '\n' ' ')"
    fi
    echo
  done
}

# S5: one server (127.0.0.15) at 1 MiB/s per connection that takes at most 4
# connections at once (limit_conn, 503 beyond), asked for 12.
s5() {
  echo "### S5: a lone server that caps connections: 256 MiB at 1 MiB/s per connection (limit_rate 1m, sendfile_max_chunk 64k), at most 4 at once (limit_conn 4, 503 beyond), 12 connections asked"
  echo
  s3_sc s5 "$1" 64 5
  echo "Ideal: 256 MiB / (4 × 1 MiB/s) = 64 s. Target for convoy: at most 1.05 × ideal and at most 12 answers of 503."
  echo
}

# ---------------------------------------------------------------- repair

# repair [RUNS]: issue 14's anchor. A copy of www/256m.bin named dl.bin with three
# flipped bytes, in 1 MiB pieces 17, 100 and 200, is mended from nginx (unthrottled)
# with a Metalink of its 1 MiB sha-256 pieces, its sha-256 and its URL: `aria2c -V -M`
# against `convoy repair`, in turn. Before every run, outside the timing: a fresh
# damaged copy, sync, an empty access log. Counted: the wall time, the body bytes nginx
# sent and its requests; the result must be the served file byte for byte.
repair_meta() { # FILE URL NAME: a Metalink 4 of FILE at URL saved as NAME, 1 MiB pieces
  echo '<?xml version="1.0" encoding="UTF-8"?>'
  echo '<metalink xmlns="urn:ietf:params:xml:ns:metalink">'
  echo "  <file name=\"$3\">"
  echo "    <size>$(stat -c %s "$1")</size>"
  echo "    <hash type=\"sha-256\">$(sha256sum "$1" | cut -d' ' -f1)</hash>"
  echo "    <pieces length=\"$MiB\" type=\"sha-256\">"
  split -b "$MiB" --filter='sha256sum' "$1" | awk '{print "      <hash>" $1 "</hash>"}'
  echo "    </pieces>"
  echo "    <url>$2</url>"
  echo "  </file>"
  echo "</metalink>"
}

# repair_damage FILE OFFSET...: inverts the byte at each OFFSET of FILE.
repair_damage() {
  local f=$1 off b
  shift
  for off in "$@"; do
    b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
    printf "\\$(printf '%03o' $((b ^ 255)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
  done
}

repair() {
  local runs=$1 file=256m.bin log="$work/logs/fast.log" meta="$work/repair.meta4"
  local offs=($((17 * MiB + 12345)) $((100 * MiB)) $((200 * MiB + MiB - 1)))
  repair_meta "$work/www/$file" "http://127.0.0.1:$port_fast/$file" "$out_name" >"$meta"
  local -a labels=("aria2c -V -M" "convoy repair") cmds=(
    "aria2c -q -V -M $meta -d $out_dir --file-allocation=none"
    "$convoy repair --metalink $meta $out_dir/$out_name")
  local r t k rc t0 t1 tf="$work/time.txt" reqs
  for r in $(seq 1 "$runs"); do
    for t in 0 1; do
      k="repair/$t"
      fresh "$log"
      cp "$work/www/$file" "$out_dir/$out_name"
      repair_damage "$out_dir/$out_name" "${offs[@]}"
      sync
      rc=0
      t0=$(date +%s%N)
      timeout -k 5 "$limit" /usr/bin/time -v -o "$tf" bash -c "exec ${cmds[t]}" >"$work/logs/tool.out" 2>&1 || rc=$?
      t1=$(date +%s%N)
      R_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", (b - a) / 1e9}')
      read -r R_CPU R_RSS < <(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2}
        /Maximum resident set size/ {m = $2} END {printf "%.2f %d\n", u + s, m}' "$tf" 2>/dev/null || echo "0 0")
      R_STATUS=ok
      if [ "$rc" -ne 0 ]; then R_STATUS=$(failure "$rc"); else check get "$file" "repair-$t-run$r"; fi
      R_SENT=$(sent "$log")
      reqs=$(awk '$2 != 416' "$log" | wc -l)
      record "$k" "$r"
      K_EXTRA[$k]+="$reqs "
      [ "$t" = 1 ] && [ "$rc" -eq 0 ] && K_SAYS[$k]="run $r: $(grep -o 'repaired .*' "$work/logs/tool.out" | tail -n 1 | sed "s|$out_dir/||")"
      progress repair "$r/$runs" "${labels[t]}"
    done
  done
  echo "### Repair: 256 MiB with three flipped bytes, 1 MiB sha-256 pieces, from nginx on loopback"
  echo
  echo "Three bytes of a 256 MiB copy flipped, in pieces 17, 100 and 200; the Metalink gives 256 sha-256"
  echo "pieces of 1 MiB, the whole file's sha-256 and nginx's URL (unthrottled). Target (issue 14): convoy"
  echo "fetches exactly the three pieces (3 MiB, and the probe's one byte) and takes at most aria2c's time."
  echo "The tools take turns; a fresh damaged copy before each run, outside the timing."
  echo
  echo "| tool | command | runs ok | wall s, median (min–max) | CPU s (user+sys) | peak RSS MiB | server sent, bytes (median) | requests (median) |"
  echo "|---|---|---|---|---|---|---|---|"
  for t in 0 1; do
    k="repair/$t"
    local w c m s q
    w=$(stats "${K_WALL[$k]:-}")
    if [ -z "$w" ]; then
      echo "| ${labels[t]} | \`${cmds[t]//$work/\$W}\` | ${K_OK[$k]:-0}/${K_RUNS[$k]:-0} | – | – | – | – | – |"
      continue
    fi
    c=$(median "${K_CPU[$k]}") m=$(maxof "${K_RSS[$k]}") s=$(imedian "${K_SENT[$k]}") q=$(imedian "${K_EXTRA[$k]}")
    awk -v l="${labels[t]}" -v cmd="${cmds[t]//$work/\$W}" -v w="$w" -v ok="${K_OK[$k]:-0}" -v n="${K_RUNS[$k]:-0}" \
      -v c="$c" -v m="$m" -v s="$s" -v q="$q" 'BEGIN {
        split(w, a, " ")
        printf "| %s | `%s` | %d/%d | %.3f (%.3f–%.3f) | %.2f | %.1f | %d (%.3f MiB) | %d |\n", l, cmd, ok, n, a[1], a[2], a[3], c, m / 1024, s, s / 1048576, q
      }'
  done
  echo
  echo "\$W is $work. Requests: the lines of nginx's access log for the run (HEAD, probes and ranges)."
  if [ -n "${K_SAYS[repair/1]:-}" ]; then
    echo
    echo "convoy's own summary of its last run: ${K_SAYS[repair/1]}"
  fi
  local a b
  a=$(median "${K_WALL[repair/0]:-}") b=$(median "${K_WALL[repair/1]:-}")
  if [ -n "$a" ] && [ -n "$b" ]; then
    echo
    awk -v a="$a" -v b="$b" 'BEGIN {printf "Medians, convoy / aria2c: %.3f / %.3f = %.2f.\n", b, a, b / a}'
  fi
  echo
  for t in 0 1; do notes "repair/$t" "${labels[t]}"; done | sed '1s/^/Runs that did not count:\n\n/'
  echo
}

# ---------------------------------------------------------------- issue 13: no -n

# The network namespace of S9, S10 and S13: a loopback of its own that tc shapes, and
# an nginx of its own (bench/nginx-ns.conf.in), started by the first scenario that
# needs them; cleanup ends them (ns_down). ns_start fails, saying why, where no
# namespace can be made (not root): the scenario then says it did not run.
ns_up='' ns_nginx_pid='' ns_why=''
ns_x() { ip netns exec "$ns_name" "$@"; }
ns_start() {
  [ -z "$ns_up" ] || return 0
  if ! ns_why=$(ip netns add "$ns_name" 2>&1); then
    ns_why="ip netns add: ${ns_why:-failed} (it needs root)"
    echo "bench: $ns_why" >&2
    return 1
  fi
  ns_up=1
  ns_x ip link set lo up
  sed -e "s|@WORK@|$work|g" -e "s|@PORT_NS1@|$port_ns1|" -e "s|@PORT_NS5@|$port_ns5|" \
    -e "s|@PORT_NSSLOW@|$port_nsslow|" -e "s|@PORT_NSFAST@|$port_nsfast|" \
    "$here/nginx-ns.conf.in" >"$work/nginx-ns.conf"
  rm -f "$work/nginx-ns.pid"
  ns_x nginx -c "$work/nginx-ns.conf"
  for _ in $(seq 1 50); do
    [ -s "$work/nginx-ns.pid" ] && break
    sleep 0.1
  done
  ns_nginx_pid=$(cat "$work/nginx-ns.pid" 2>/dev/null || true)
  for _ in $(seq 1 50); do
    ns_x curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$port_nsfast/256m.bin" && return 0
    sleep 0.1
  done
  echo "bench: nginx did not start in the namespace $ns_name" >&2
  exit 1
}
ns_down() {
  [ -n "$ns_up" ] || return 0
  local p
  if [ -n "$ns_nginx_pid" ]; then
    kill "$ns_nginx_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$ns_nginx_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  # Whatever still runs in the namespace is this script's (a tool that outlived its timeout).
  for p in $(ip netns pids "$ns_name" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  ip netns del "$ns_name" 2>/dev/null || true
  ns_up=''
}

# ns_link RATE: the namespace's loopback capped at RATE (tc's units: 32mibps is 32 MiB/s)
# by a token bucket. 256 KiB of burst and 50 ms of queue hold one curl within 1 % of the
# rate, and 8 or 40 at once too (the scenarios check it with curl_rate).
ns_link() {
  ns_x tc qdisc del dev lo root 2>/dev/null || true
  ns_x ip link set lo mtu 65536
  ns_x tc qdisc add dev lo root tbf rate "$1" burst 256kb latency 50ms
}

# ns_slow: S13's shaping: all that the slow mirror's port sends shares one htb class of
# 40 KiB/s, whatever the number of connections; the rest goes through a class of
# 100 gbit/s. The MTU is 1500 here: with loopback's 64 KiB packets, which take 1.6 s
# each at 40 KiB/s, two connections at once time out, send again and get far less than
# the cap between them. Calling it again empties the slow class's queue (up to 200
# packets, about 7 s), which a run leaves full: S13 does before each run.
ns_slow() {
  ns_x tc qdisc del dev lo root 2>/dev/null || true
  ns_x ip link set lo mtu 1500
  ns_x tc qdisc add dev lo root handle 1: htb default 10
  ns_x tc class add dev lo parent 1: classid 1:10 htb rate 100gbit quantum 200000
  ns_x tc class add dev lo parent 1: classid 1:20 htb rate 40kibps ceil 40kibps burst 4k cburst 4k quantum 1514
  ns_x tc qdisc add dev lo parent 1:20 handle 20: pfifo limit 200
  ns_x tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip sport "$port_nsslow" 0xffff flowid 1:20
}

# curl_rate URL SECONDS [N]: bytes per second that N curls at once (default 1) in the
# namespace got from URL in all, each for SECONDS at most (or until it had the file):
# the sum of their bytes over the longest one's time.
curl_rate() {
  local i f="$work/logs/curl-rate"
  local -a pids=()
  rm -f "$f".*
  for i in $(seq 1 "${3:-1}"); do
    ns_x curl -s -o /dev/null --max-time "$2" -w '%{size_download} %{time_total}\n' "$1" >"$f.$i" &
    pids+=("$!")
    bg_pids+=("$!")
  done
  for i in "${pids[@]}"; do
    wait "$i" || true # 28: --max-time ran out, as meant
    forget "$i"
  done
  cat "$f".* | awk '{b += $1; if ($2 > t) t = $2} END {printf "%.0f\n", (t > 0 ? b / t : 0)}'
  rm -f "$f".*
}

# conn_stats LOG...: "AT_ONCE IN_ALL": the most connections open at once, and the
# connections in all, in nginx's access LOGs. A connection spans from the start of its
# first answer ($msec - $request_time) to the end of its last; ends before starts at
# the same millisecond.
conn_stats() {
  awk '{
      c = FILENAME " " $(NF - 2); e = $(NF - 1) + 0; s = e - $NF
      if (!(c in lo) || s < lo[c]) lo[c] = s
      if (!(c in hi) || e > hi[c]) hi[c] = e
    }
    END {for (c in lo) printf "%.3f 1\n%.3f -1\n", lo[c], hi[c]}' "$@" |
    sort -k1,1n -k2,2n | awk '{n += $2; if (n > m) m = n; if ($2 > 0) all++} END {printf "%d %d\n", m, all}'
}

# json_conns FILE [HOSTS]: "MOST CHANGES" from convoy's --json events in FILE: the
# largest connection count (of one server: the start event's, and each connections
# event's), and the changes as "COUNT REASON at SECONDS s", comma-separated, each
# prefixed with its server when HOSTS is set.
json_conns() {
  awk -v hosts="${2:-}" '
    function field(s, k,   r) {
      if (!match(s, "\"" k "\":(\"[^\"]*\"|[^,}]*)")) return ""
      r = substr(s, RSTART + length(k) + 3, RLENGTH - length(k) - 3)
      gsub(/"/, "", r)
      return r
    }
    /^\{"event":"start"/ {n = field($0, "connections") + 0; if (n > m) m = n; start = n}
    /^\{"event":"connections"/ {
      n = field($0, "connections") + 0
      if (n > m) m = n
      h = field($0, "host")
      ne++
      eh[ne] = h; en[ne] = n; er[ne] = field($0, "reason"); et[ne] = field($0, "elapsed") + 0
    }
    END {
      t = (start ? "starts with " start : "")
      for (i = 1; i <= ne; i++)
        t = t (t == "" ? "" : ", ") (hosts != "" ? eh[i] " " : "") sprintf("%d %s at %.1f s", en[i], er[i], et[i])
      printf "%d %s\n", m, t
    }' "$1" 2>/dev/null || echo 0
}

# Per run of S9-S14, failed runs included: the connections open at once and in all
# (conn_stats of all the run's logs; /L of log L alone), the answers of 503, the body
# bytes of log L (/L); from the trace run, convoy's largest count and changes.
declare -A K_ATONCE K_INALL K_503 K_JMAX K_TRACE K_LOGSENT
# conn_runs SC RUNS URL FILE LOG...: every row of SC in turn, RUNS times, against URL
# (S13's commands name their URLs), then each trace row of SC once. Before each run it
# calls $pre_run KEY, if set (a failure skips the run), and after it $post_run.
conn_runs() {
  local sc=$1 runs=$2 url=$3 file=$4 size i r k l li s n c a j t
  shift 4
  local -a idx logs=("$@")
  size=$(stat -c %s "$work/www/$file")
  mapfile -t idx < <(rows "$sc")
  for r in $(seq 1 "$runs"); do
    for i in "${idx[@]}"; do
      k="$sc/$i"
      [ -z "${K_SKIP[$k]:-}" ] || continue
      if [ -n "${pre_run:-}" ] && ! "$pre_run" "$k"; then continue; fi
      for l in "${logs[@]}"; do : >"$l"; done
      timed "$i" "$url" "$file" "${logs[0]}" "$sc-$i-run$r"
      s=0 n=0 li=0
      for l in "${logs[@]}"; do
        li=$((li + 1))
        c=$(sent "$l")
        s=$((s + c))
        K_LOGSENT[$k/$li]+="$c "
        read -r c a < <(conn_stats "$l")
        K_ATONCE[$k/$li]+="$c "
        n=$((n + $(awk '$2 == 503' "$l" | wc -l)))
      done
      read -r c a < <(conn_stats "${logs[@]}")
      R_SENT=$s
      K_ATONCE[$k]+="$c " K_INALL[$k]+="$a " K_503[$k]+="$n "
      record "$k" "$r"
      own_account "$k" "$r" "$((R_SENT - size))"
      progress "$sc" "$r/$runs" "${T_LABEL[i]} ($c at once, $n answers of 503)"
      [ -z "${post_run:-}" ] || "$post_run"
    done
  done
  local ti
  for ti in "${!T_SC[@]}"; do
    [[ ${T_SC[ti]} == *" $sc "* && ${T_KIND[ti]} == trace ]] || continue
    k="$sc/$(row_of "$sc" "${T_LABEL[ti]}")"
    [ -z "${K_SKIP[$k]:-}" ] || continue
    if [ -n "${pre_run:-}" ] && ! "$pre_run" "$k"; then continue; fi
    for l in "${logs[@]}"; do : >"$l"; done
    timed "$ti" "$url" "$file" "${logs[0]}" "$sc-$ti-trace"
    read -r c a < <(conn_stats "${logs[@]}")
    read -r j t < <(json_conns "$work/logs/tool.out" "${trace_hosts:-}")
    [ "${j:-0}" = 0 ] || K_JMAX[$k]+="$j "
    if [ "$R_STATUS" = ok ]; then
      K_TRACE[$k]+="${t:-no events}; the run took $R_WALL s, $c connections open at once"
    else
      K_TRACE[$k]+="$R_STATUS${t:+; $t}"
    fi
    progress "$sc" trace "${T_LABEL[ti]} --json ($c at once)"
    [ -z "${post_run:-}" ] || "$post_run"
  done
  return 0
}

# mmm LIST: "median (min–max)" of LIST, whole numbers, or –.
mmm() {
  local st
  st=$(stats "$1")
  if [ -z "$st" ]; then echo "–"; return; fi
  awk -v s="$st" 'BEGIN {split(s, a, " "); printf "%.0f (%.0f–%.0f)\n", a[1], a[2], a[3]}'
}
or_dash() { if [ -n "$1" ]; then echo "$1"; else echo "–"; fi; }

# conn_table SC SIZE REF REFNAME: the table of SC as conn_runs ran it, the ratio to REF s.
conn_table() {
  local sc=$1 size=$2 ref=$3 i k s
  echo "| tool | runs ok | wall s, median (min–max) | MiB/s | ratio to $4 | CPU s (user+sys) | peak RSS MiB | connections open at once, median (min–max) | connections in all, median (min–max) | convoy's own largest count (--json, trace run) | 503 answers, median (min–max) | server sent, bytes over the file size, median |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  for i in $(rows "$sc"); do
    k="$sc/$i"
    s=$(imedian "${K_SENT[$k]:-}")
    [ -z "$s" ] || s="+$((s - size))"
    echo "| ${T_LABEL[i]} | $(row_cells "$k" "$size" "$ref") | $(mmm "${K_ATONCE[$k]:-}") | $(mmm "${K_INALL[$k]:-}") | $(or_dash "$(maxof "${K_JMAX[$k]:-}")") | $(mmm "${K_503[$k]:-}") | $(or_dash "$s") |"
  done
  echo
  conn_notes "$sc"
}

# conn_notes SC: how the connections were counted; convoy's changes of its count, its
# own summaries and the failed runs of SC.
conn_notes() {
  local sc=$1 i any
  local -a idx
  mapfile -t idx < <(rows "$sc")
  echo "Connections open at once and in all: from nginx's access log (\$connection; a connection spans from the start of its first answer to the end of its last), failed runs included, as are the 503 answers. convoy's own count: the largest \`connections\` of its --json start and connections events (per server), in one more run with --json after the timed ones (trace run, not in the table's times: --json makes convoy hash the file)."
  echo
  any=$(for i in "${idx[@]}"; do
    if [ -n "${K_TRACE[$sc/$i]:-}" ]; then echo "- ${T_LABEL[i]}: ${K_TRACE[$sc/$i]}"; fi
  done)
  [ -z "$any" ] || printf "convoy's connection count in the trace run (its --json events: the count, why, when):\n\n%s\n\n" "$any"
  accounts_block "$sc" "${idx[@]}"
  notes_block "$sc" "${idx[@]}"
}

# row_of SC LABEL: the row of tool LABEL in SC.
row_of() {
  local i
  for i in $(rows "$1"); do
    [ "${T_LABEL[i]}" = "$2" ] && { echo "$i"; return; }
  done
}
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }

# target_auto SC IDEAL FACTOR [MOST]: the target line of convoy (auto) in SC: its median
# wall at most FACTOR x IDEAL s, and at most MOST connections open at once (the most of
# any run, in nginx's log and by its own count).
target_auto() {
  local k
  k="$1/$(row_of "$1" 'convoy (auto)')"
  awk -v w="$(median "${K_WALL[$k]:-}")" -v ideal="$2" -v f="$3" -v most="${4:-}" \
    -v o="$(maxof "${K_ATONCE[$k]:-}")" -v j="$(maxof "${K_JMAX[$k]:-}")" 'BEGIN {
      printf "Target for convoy (auto): at most %.2f × ideal = %.3f s", f, f * ideal
      if (most != "") printf ", and at most %d connections open at once", most
      if (w == "") {printf "; no run succeeded: **not met**.\n\n"; exit}
      ok = (w <= f * ideal)
      printf ". Measured: median %.3f s = %.2f × ideal", w, w / ideal
      if (most != "") {
        printf "; at most %s open at once in the access log, %s by its own count in the trace run", (o == "" ? "?" : o), (j == "" ? "?" : j)
        ok = ok && o != "" && o <= most && (j == "" || j <= most)
      }
      printf ": **%s**.\n\n", (ok ? "met" : "not met")
    }'
}

# S9: no -n against a server that gives each connection 1 MiB/s behind a 32 MiB/s link:
# it takes 32 connections to fill the link.
s9() {
  local runs=$1 size ideal rate
  ns_start || { printf '### S9: not run\n\nNo network namespace: %s.\n\n' "$ns_why"; return 0; }
  ns_link 32mibps
  rate=$(curl_rate "http://127.0.0.1:$port_nsfast/256m.bin" 3)
  size=$(stat -c %s "$work/www/256m.bin")
  ideal=$(awk -v s="$size" 'BEGIN {printf "%.3f", s / (32 * 1048576)}')
  conn_runs s9 "$runs" "http://127.0.0.1:$port_ns1/256m.bin" 256m.bin "$work/logs/ns-1m.log"
  echo "### S9: no -n, slow connections: 256 MiB at 1 MiB/s per connection (limit_rate 1m, sendfile_max_chunk 64k) behind a 32 MiB/s link (tc tbf on the loopback of the namespace $ns_name)"
  echo
  conn_table s9 "$size" "$ideal" "ideal ($ideal s)"
  echo "Ideal: 256 MiB / 32 MiB/s = $ideal s; it takes 32 connections. Link check: one curl from an unthrottled server in the namespace got $(mib "$rate") MiB/s over 3 s. aria2c stops at 16 connections (its most)."
  echo
  target_auto s9 "$ideal" 1.10 40
}

# S10: no -n where the link, not the connections, is the limit: 5 MiB/s per
# connection behind 20 MiB/s; 4 connections fill it.
s10() {
  local runs=$1 size ideal rate
  ns_start || { printf '### S10: not run\n\nNo network namespace: %s.\n\n' "$ns_why"; return 0; }
  ns_link 20mibps
  rate=$(curl_rate "http://127.0.0.1:$port_nsfast/256m.bin" 3)
  size=$(stat -c %s "$work/www/256m.bin")
  ideal=$(awk -v s="$size" 'BEGIN {printf "%.3f", s / (20 * 1048576)}')
  conn_runs s10 "$runs" "http://127.0.0.1:$port_ns5/256m.bin" 256m.bin "$work/logs/ns-5m.log"
  echo "### S10: no -n, link-capped: 256 MiB at 5 MiB/s per connection (limit_rate 5m, sendfile_max_chunk 64k) behind a 20 MiB/s link (tc tbf on the loopback of the namespace $ns_name)"
  echo
  conn_table s10 "$size" "$ideal" "ideal ($ideal s)"
  echo "Ideal: 256 MiB / 20 MiB/s = $ideal s; 4 connections fill the link. Link check: one curl from an unthrottled server in the namespace got $(mib "$rate") MiB/s over 3 s."
  echo
  target_auto s10 "$ideal" 1.05 6
}

# S11: no -n on S1's unthrottled loopback, against convoy's fixed counts in the same run.
s11() {
  local runs=$1 size i w best='' bestname=''
  conn_runs s11 "$runs" "http://127.0.0.1:$port_fast/1g.bin" 1g.bin "$work/logs/fast.log"
  size=$(stat -c %s "$work/www/1g.bin")
  for i in $(rows s11); do
    [[ ${T_LABEL[i]} == "convoy -n "* ]] || continue
    w=$(median "${K_WALL[s11/$i]:-}")
    [ -n "$w" ] || continue
    if [ -z "$best" ] || awk -v a="$w" -v b="$best" 'BEGIN {exit !(a < b)}'; then best=$w bestname=${T_LABEL[i]}; fi
  done
  echo "### S11: no -n on S1's setup: 1 GiB from nginx on loopback, unthrottled, to disk, against convoy -n 4, 8 and 16"
  echo
  conn_table s11 "$size" "${best:-0}" "the best fixed -n (${bestname:-none}, ${best:-?} s)"
  if [ -z "$best" ]; then
    echo "Target for convoy (auto): at most 1.05 × the best fixed -n; no fixed -n run succeeded: **not met**."
  else
    echo "Best fixed -n: the least median wall of convoy -n 4, -n 8 and -n 16 in this run, $bestname."
    echo
    target_auto s11 "$best" 1.05 | sed 's/× ideal/× the best fixed -n/g'
  fi
  echo
}

# S12: no -n against a lone server that takes 6 connections at once (S5's mechanism).
s12() {
  local runs=$1 size ideal k m
  conn_runs s12 "$runs" "http://127.0.0.16:$port_fast/256m.bin" 256m.bin "$work/logs/m6.log"
  size=$(stat -c %s "$work/www/256m.bin")
  ideal=$(awk -v s="$size" 'BEGIN {printf "%.3f", s / (6 * 2 * 1048576)}')
  echo "### S12: no -n, a lone server that caps connections: 256 MiB at 2 MiB/s per connection (limit_rate 2m, sendfile_max_chunk 64k), at most 6 at once (limit_conn 6, 503 beyond, 127.0.0.16)"
  echo
  conn_table s12 "$size" "$ideal" "ideal ($ideal s)"
  echo "Ideal: 256 MiB / (6 × 2 MiB/s) = $ideal s. aria2c and axel ask for 16."
  echo
  k="s12/$(row_of s12 'convoy (auto)')"
  m=$(maxof "${K_503[$k]:-}")
  target_auto s12 "$ideal" 1.05 | sed "s/\\. Measured:/, and at most 12 answers of 503 in every run. Measured: at most ${m:-?} answers of 503;/; s/: \\*\\*met\\*\\*/: **$(awk -v m="${m:-99}" 'BEGIN {print (m <= 12 ? "met" : "not met")}')**/"
}

# S13: a slow mirror first on the command line (40 KiB/s in all, whatever the number of
# connections), a fast one second, against the fast one alone, each tool in turn.
s13_pre() { ns_slow; } # each run meets an empty queue at the slow mirror
s13() {
  local runs=$1 size slow fast i k f w over pre_run=s13_pre trace_hosts=1
  ns_start || { printf '### S13: not run\n\nNo network namespace: %s.\n\n' "$ns_why"; return 0; }
  ns_slow
  slow=$(curl_rate "http://127.0.0.1:$port_nsslow/256m.bin" 6 2)
  fast=$(curl_rate "http://127.0.0.1:$port_nsfast/256m.bin" 30)
  ns_slow
  size=$(stat -c %s "$work/www/256m.bin")
  conn_runs s13 "$runs" '' 256m.bin "$work/logs/ns-slow.log" "$work/logs/ns-fast.log"
  echo "### S13: a slow mirror first: 256 MiB from a mirror that sends 40 KiB/s in all (tc htb on the port of the namespace $ns_name) given first, and an unthrottled one second, against the unthrottled one alone"
  echo
  echo "| tool | runs ok | wall s, median (min–max) | over the same tool's fast alone, s | CPU s (user+sys) | peak RSS MiB | sent by the slow mirror, bytes, median | by the fast, bytes, median | open at once to the slow / the fast, median | convoy's own largest count for one server (--json, trace run) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for i in $(rows s13); do
    k="s13/$i"
    w=$(stats "${K_WALL[$k]:-}")
    f=$(median "${K_WALL[s13/$(row_of s13 "${T_LABEL[i]%, *}, fast alone")]:-}")
    over="–"
    if [[ ${T_LABEL[i]} == *"slow first" ]] && [ -n "$w" ] && [ -n "$f" ]; then
      over=$(awk -v w="$w" -v f="$f" 'BEGIN {split(w, a, " "); printf "%+.3f", a[1] - f}')
    fi
    awk -v w="$w" -v l="${T_LABEL[i]}" -v ok="${K_OK[$k]:-0}" -v n="${K_RUNS[$k]:-0}" -v over="$over" \
      -v c="$(median "${K_CPU[$k]:-}")" -v r="$(maxof "${K_RSS[$k]:-}")" \
      -v s1="$(or_dash "$(imedian "${K_LOGSENT[$k/1]:-}")")" -v s2="$(or_dash "$(imedian "${K_LOGSENT[$k/2]:-}")")" \
      -v o1="$(or_dash "$(median "${K_ATONCE[$k/1]:-}")")" -v o2="$(or_dash "$(median "${K_ATONCE[$k/2]:-}")")" \
      -v j="$(or_dash "$(maxof "${K_JMAX[$k]:-}")")" 'BEGIN {
        split(w, a, " ")
        printf "| %s | %d/%d | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n", l, ok, n,
          (w == "" ? "–" : sprintf("%.3f (%.3f–%.3f)", a[1], a[2], a[3])), over,
          (c == "" ? "–" : sprintf("%.2f", c)), (r == "" ? "–" : sprintf("%.1f", r / 1024)), s1, s2, o1, o2, j }'
  done
  echo
  echo "Slow mirror check: two curls at once got $(awk -v b="$slow" 'BEGIN {printf "%.1f", b / 1024}') KiB/s from it in all over 6 s; one curl got $(mib "$fast") MiB/s from the fast one. Before every run the slow mirror's queue is emptied. Runs are bounded to $limit s; a tool that times out is not run again."
  echo
  conn_notes s13 | sed -e "s/127\.0\.0\.1:$port_nsslow /slow: /g" -e "s/127\.0\.0\.1:$port_nsfast /fast: /g"
  w=$(median "${K_WALL[s13/$(row_of s13 'convoy (auto), slow first')]:-}")
  f=$(median "${K_WALL[s13/$(row_of s13 'convoy (auto), fast alone')]:-}")
  awk -v w="$w" -v f="$f" 'BEGIN {
    printf "Target for convoy (auto): slow first at most its fast alone + 2 s"
    if (w == "" || f == "") {printf "; a run did not succeed: **not met**.\n\n"; exit}
    printf " = %.3f s. Measured: median %.3f s, %+.3f s over fast alone: **%s**.\n\n", f + 2, w, w - f, (w <= f + 2 ? "met" : "not met") }'
}

# S14: convoy's peak RSS for a sparse 1 GiB file and a sparse 64 GiB one (big_gib). The
# sparse files hold a random MiB every STEP MiB and at their end, zeros between.
big_step=1024
sparse() { # NAME MIB STEP: makes www/NAME unless it is there
  local f="$work/www/$1" o
  [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" = $(($2 * MiB)) ] && return 0
  rm -f "$f"
  truncate -s "$2M" "$f"
  for o in $(seq 0 "$3" $(($2 - 1))) $(($2 - 1)); do
    dd if=/dev/urandom of="$f" bs=1M count=1 seek="$o" conv=notrunc status=none
  done
}

# check_sampled FILE TAG: S14's big file is too big to hash after every run: the
# output must have FILE's size, and be FILE's in every MiB at a multiple of half of
# big_step (the random MiB, and a hole between each two) and in the last MiB. Sets
# R_STATUS to CORRUPT otherwise (and deletes the output: no room to keep it).
check_sampled() {
  local src="$work/www/$1" out="$out_dir/$out_name" o n bad=''
  n=$(($(stat -c %s "$src") / MiB))
  if [ "$(stat -c %s "$out" 2>/dev/null || echo none)" != "$(stat -c %s "$src")" ]; then
    bad="size $(stat -c %s "$out" 2>/dev/null || echo none), want $(stat -c %s "$src")"
  else
    for o in $(seq 0 $((big_step / 2)) $((n - 1))) $((n - 1)); do
      cmp -s -n "$MiB" -i "$((o * MiB)):$((o * MiB))" "$src" "$out" || { bad="MiB $o differs"; break; }
    done
  fi
  if [ -n "$bad" ]; then
    R_STATUS=CORRUPT
    corrupt+=("$2: $bad (sampled check; output deleted)")
    rm -f "$out"
    echo "bench: CORRUPT output: $2" >&2
  fi
}

s14_room() { # KEY: false, with a note, when the output folder has no room for the big file + 2 GiB
  local free
  free=$(df --output=avail -B1 "$out_dir" | tail -n 1)
  if [ "$free" -lt $(((big_gib + 2) * 1024 * MiB)) ]; then
    K_NOTE[$1]+="not run: $(awk -v f="$free" 'BEGIN {printf "%.1f", f / 2^30}') GiB free under $out_dir, $((big_gib + 2)) GiB needed; "
    K_SKIP[$1]=1
    return 1
  fi
}
s14_rm() { rm -rf "${out_dir:?}"/* "$out_dir"/.[!.]* 2>/dev/null || true; }

s14() {
  local runs=$1 i k sc file r j
  sparse sparse-1g.bin 1024 64
  sparse "sparse-${big_gib}g.bin" $((big_gib * 1024)) "$big_step"
  (cd "$work/www" && sha256sum sparse-1g.bin >>"$work/sums")
  conn_runs s14 "$runs" "http://127.0.0.1:$port_fast/sparse-1g.bin" sparse-1g.bin "$work/logs/fast.log"
  local limit=$big_limit pre_run=s14_room post_run=s14_rm
  conn_runs s14big "$big_runs" "http://127.0.0.1:$port_fast/sparse-${big_gib}g.bin" "sparse-${big_gib}g.bin" "$work/logs/fast.log"
  pre_run='' post_run=''
  echo "### S14: peak RSS for a sparse 1 GiB file ($runs runs) and a sparse $big_gib GiB file ($big_runs run(s), convoy only), from nginx on loopback, unthrottled, to disk"
  echo
  echo "| tool | file | runs ok | wall s, median (min–max) | MiB/s | CPU s (user+sys) | peak RSS MiB, max (median) | open at once, max | at most 20 MiB |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for sc in s14 s14big; do
    [ "$sc" = s14 ] && file="1 GiB" || file="$big_gib GiB"
    for i in $(rows "$sc"); do
      k="$sc/$i"
      r=$(maxof "${K_RSS[$k]:-}")
      j=$(or_dash "$(maxof "${K_ATONCE[$k]:-}")")
      awk -v w="$(stats "${K_WALL[$k]:-}")" -v l="${T_LABEL[i]}" -v f="$file" -v ok="${K_OK[$k]:-0}" \
        -v n="${K_RUNS[$k]:-0}" -v c="$(median "${K_CPU[$k]:-}")" -v r="$r" -v rm="$(median "${K_RSS[$k]:-}")" \
        -v j="$j" -v size="$(stat -c %s "$work/www/sparse-$([ "$sc" = s14 ] && echo 1 || echo "$big_gib")g.bin")" 'BEGIN {
          split(w, a, " ")
          printf "| %s | %s | %d/%d | %s | %s | %s | %s | %s | %s |\n", l, f, ok, n,
            (w == "" ? "–" : sprintf("%.3f (%.3f–%.3f)", a[1], a[2], a[3])),
            (w == "" ? "–" : sprintf("%.1f", size / 1048576 / a[1])), (c == "" ? "–" : sprintf("%.2f", c)),
            (r == "" ? "–" : sprintf("%.1f (%.1f)", r / 1024, rm / 1024)), j,
            (l !~ /^convoy/ ? "" : r == "" ? "–" : (r <= 20480 ? "yes" : "no") (l == "convoy -n 16" || l == "convoy (auto)" ? "" : " (not a target row)")) }'
    done
  done
  echo
  echo "The served files are sparse (a random MiB every 64 MiB, every GiB in the $big_gib GiB one, and at the end; zeros between); the outputs are written in full (convoy reserves the whole file first), and the $big_gib GiB one is deleted right after its run. 1 GiB outputs: SHA-256 checked; $big_gib GiB outputs: size, and every MiB at a multiple of 512 MiB and the last compared (check_sampled). The $big_gib GiB runs are bounded to $big_limit s (BENCH_BIG_TIMEOUT). aria2c and axel run on the 1 GiB file only. convoy -n 32: the most connections convoy opens without -n (--max-connections 32)."
  echo
  echo "On the 1 GiB file:"
  echo
  conn_notes s14
  echo "On the $big_gib GiB file:"
  echo
  conn_notes s14big | sed -n '3,$p' # the counting note once
  awk -v l="$(for sc in s14 s14big; do for i in $(rows "$sc"); do
      [[ ${T_LABEL[i]} == 'convoy -n 16' || ${T_LABEL[i]} == 'convoy (auto)' ]] || continue
      echo "${T_LABEL[i]}, $([ "$sc" = s14 ] && echo '1 GiB' || echo "$big_gib GiB"): $(or_dash "$(maxof "${K_RSS[$sc/$i]:-}")")"
    done; done | paste -sd';')" 'BEGIN {
      n = split(l, a, ";"); ok = 1; any = 0
      for (i = 1; i <= n; i++) { split(a[i], b, ": "); if (b[2] == "–") ok = 0; else { any = 1; if (b[2] + 0 > 20480) ok = 0 }
        s = s (i > 1 ? "; " : "") b[1] " " (b[2] == "–" ? "–" : sprintf("%.1f MiB", b[2] / 1024)) }
      printf "Target for convoy -n 16 and convoy (auto): peak RSS at most 20 MiB in every run. Measured (max over runs): %s: **%s**.\n\n", s, (ok && any ? "met" : "not met") }'
  k="s14big/$(row_of s14big 'convoy (auto)')"
  j=$(maxof "${K_ATONCE[$k]:-} ${K_ATONCE[s14/$(row_of s14 'convoy (auto)')]:-} ${K_JMAX[s14/$(row_of s14 'convoy (auto)')]:-}")
  r=$(maxof "${K_RSS[s14/$(row_of s14 'convoy -n 32')]:-}")
  echo "Without -n convoy had at most ${j:-?} connections open at once here (access log; its own count in the trace run); its ceiling is 32 (--max-connections). $([ "${j:-0}" -ge 32 ] && echo "So its RSS above is at the ceiling." || echo "So its RSS above is not at the ceiling's: at 32 connections (convoy -n 32, 1 GiB) the peak RSS was $(or_dash "$(awk -v r="$r" 'BEGIN {if (r != "") printf "%.1f MiB", r / 1024}')")$(awk -v r="${r:-0}" 'BEGIN {if (r > 20480) printf ", over 20 MiB"}').")"
  echo
}

# micro: the Go micro-benchmarks of the hot paths (make bench-go), 3 counts each.
micro() {
  echo "### Go micro-benchmarks of the hot paths"
  echo
  echo "\`go test -run '^\$' -bench . -benchmem -count 3 ./segment ./manifest ./merge\`: the copy from"
  echo "response bodies to WriteAt over loopback (BenchmarkRun, writes discarded), the planner's work per"
  echo "256 KiB write (BenchmarkPlanCycle), a checkpoint's snapshot, a manifest save (with its fsyncs),"
  echo "and WriteAt into the part file."
  echo
  echo '```'
  (cd "$root" && go test -run '^$' -bench . -benchmem -count 3 ./segment ./manifest ./merge 2>&1) |
    grep -E '^(Benchmark|ok|FAIL|---)' || echo "go test -bench failed"
  echo '```'
  echo
}

# ---------------------------------------------------------------- report

versions() {
  echo "- convoy: \`$("$convoy" --version 2>&1 | head -1)\`, built from $1"
  echo "- curl: \`$(curl --version | head -1 | cut -d' ' -f1-3)\`"
  echo "- aria2c: \`$(aria2c --version | head -1)\`"
  echo "- axel: \`$(axel --version 2>&1 | head -1)\`"
  echo "- lftp: \`$(lftp --version | head -1 | cut -d'|' -f1-2 | tr -s ' ')\`"
  echo "- nginx: \`$(nginx -v 2>&1)\`"
  echo "- tc: \`$(tc -V 2>&1 | head -1)\` (S9, S10, S13)"
  echo "- fault proxy: bench/faultproxy (stdlib Go, built with the same toolchain)"
  echo "- $(go version), GNU time $(dpkg-query -W -f='${Version}' time 2>/dev/null || echo '?')"
}

header() { # RUNS COMMAND
  echo "# convoy benchmark results"
  echo
  echo "Written by \`bench/bench.sh all\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo "Reproduce from the repository root: \`$2\` (or \`make bench\`)."
  echo
  echo "## Machine"
  echo
  echo "- $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) memory, kernel $(uname -r)"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg); waited ${fuzz_wait} s for fuzzers to end${fuzz_note}"
  echo
  echo "## Tools"
  echo
  versions "\`git describe\` $built_from${built_dirty:+ (uncommitted changes in $built_dirty)}"
  echo
  echo "## Method"
  echo
  echo "- Everything on 127.0.0.1: nginx serves random files from $work/www (in the page cache); outputs go to $out_dir on $(findmnt -n -o FSTYPE --target "$work" 2>/dev/null || echo '?')."
  echo "- $1 runs per tool and scenario, the tools in turn (A B C A B C …). Before every run, outside the timing: the previous output and its side files are deleted, \`sync\`, and nginx's access log is emptied."
  echo "- Wall: \`date +%s%N\` around \`timeout $limit /usr/bin/time -v bash -c 'exec COMMAND'\`. CPU (user+sys, median) and peak RSS (max over runs) from \`/usr/bin/time -v\`."
  echo "- Server sent: the sum of \`\$body_bytes_sent\` in nginx's access log for that run (median over runs)."
  echo "- After every run the output's SHA-256 is compared with the served file's; any mismatch fails the harness."
  echo "- Only runs that exited 0 with the right SHA-256 count in the numbers; the others are listed under their table."
  echo "- S9, S10 and S13: nginx (a second one, bench/nginx-ns.conf.in) and the tools run in the network namespace $ns_name (\`{NS}\` in the commands: \`ip netns exec $ns_name\`), whose loopback tc shapes: a tbf for S9 and S10's link, an htb class for S13's slow mirror. Connections open at once (S9-S14): from nginx's access log."
  echo
  echo "## Commands"
  echo
  echo "| scenarios | tool | command |"
  echo "|---|---|---|"
  local i
  for i in "${!T_SC[@]}"; do
    echo "| $(trim "${T_SC[i]}")$([ "${T_KIND[i]}" = again ] && echo ' (restarts)')$([ "${T_KIND[i]}" = trace ] && echo ' (trace run, once)') | ${T_LABEL[i]} | \`$(trim "${T_CMD[i]}")\` |"
  done
  echo
  echo "## Results"
  echo
}

finish() {
  if [ ${#corrupt[@]} -gt 0 ]; then
    echo
    echo "## CORRUPT OUTPUTS"
    echo
    printf -- '- %s\n' "${corrupt[@]}"
  fi
}

load_tools
cmd=${1:-}
runs=${2:-3}
case "$cmd" in
  s1 | s2 | s3 | s3m | s4 | s5 | s7 | s8 | s9 | s10 | s11 | s12 | s13 | s14)
    setup
    "$cmd" "$runs"
    finish
    ;;
  micro) # Go benchmarks only: no nginx, no tools to build
    micro "$runs"
    ;;
  repair)
    setup
    repair "$runs"
    finish
    ;;
  all)
    setup
    repro="bench/bench.sh all $runs"
    for v in BENCH_WORK BENCH_PORT BENCH_TIMEOUT BENCH_SEED BENCH_FUZZ_WAIT BENCH_BIG_RUNS BENCH_BIG_TIMEOUT BENCH_BIG_GIB; do
      [ -n "${!v:-}" ] && repro="$v=${!v} $repro"
    done
    tmp="$work/RESULTS.md"
    t_start=$SECONDS
    header "$runs" "$repro" >"$tmp"
    for s in s1 s2 s3 s3m s4 s5 s7 s8 s9 s10 s11 s12 s13 s14 repair micro; do
      "$s" "$runs" >"$work/$s.md" # not in a pipe: the results must stay in this shell
      tee -a "$tmp" <"$work/$s.md"
    done
    {
      echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg). The whole run took $(((SECONDS - t_start) / 60)) min $(((SECONDS - t_start) % 60)) s."
      finish
    } | tee -a "$tmp"
    cp "$tmp" "$here/RESULTS.md"
    echo "bench: wrote $here/RESULTS.md" >&2
    ;;
  *)
    sed -n '2,65p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
[ ${#corrupt[@]} -eq 0 ] || { echo "bench: ${#corrupt[@]} corrupt output(s)" >&2; exit 1; }
