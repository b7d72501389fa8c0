#!/usr/bin/env bash
# Usage: fuzz.sh [FUZZTIME]
# Runs every fuzz target in the module for FUZZTIME (default 30s) each.
# New crashers are saved under the package's testdata/fuzz and then run as
# ordinary tests.
set -euo pipefail
fuzztime=${1:-30s}
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz: $pkg $target for $fuzztime"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
  done
done
