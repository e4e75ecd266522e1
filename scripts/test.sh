#!/usr/bin/env bash
# The test suite, exactly as CI runs it (.ci/run calls this script).
#   scripts/test.sh            vet, the full suite with the race detector, then every fuzz target briefly
#   FUZZTIME=2m scripts/test.sh   longer fuzzing (default 20000 executions per target)
set -euo pipefail
cd "$(dirname "$0")/.."

export CGO_ENABLED=1 # the embedded SQLite store is cgo

# The PostgreSQL store's tests need a server: start the local one. Under CI
# (CI set) it must come up, and the tests fail rather than skip without it.
if [ -n "${CI:-}" ]; then
  ./scripts/postgres.sh
else
  ./scripts/postgres.sh --try
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

# The default budget is a count of executions, not a duration: with a duration,
# Go 1.26's fuzz coordinator can report its own deadline as a failure
# ("context deadline exceeded", no failing input written) when a worker is
# mid-execution as the time runs out on a loaded machine (go.dev/issue/75804,
# fixed in Go 1.27). A count has no deadline to race. 20000 executions take
# 1–9 s per target on two cores.
fuzztime="${FUZZTIME:-20000x}"
echo "== fuzz targets, ${fuzztime} each"
while IFS= read -r file; do
  pkg="./$(dirname "$file")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    echo "-- $pkg $target"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sort)
