#!/usr/bin/env bash
# The test suite, exactly as CI runs it (.ci/run calls this script).
#   scripts/test.sh            vet, the full suite with the race detector, then every fuzz target briefly
#   FUZZTIME=2m scripts/test.sh   longer fuzzing (default 5s per target)
set -euo pipefail
cd "$(dirname "$0")/.."

export CGO_ENABLED=1 # the embedded SQLite store is cgo

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

fuzztime="${FUZZTIME:-5s}"
echo "== fuzz targets, ${fuzztime} each"
while IFS= read -r file; do
  pkg="./$(dirname "$file")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    echo "-- $pkg $target"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sort)
