# Benchmarks and the reliability harness (bench/). The test suite itself is scripts/test.sh.

.PHONY: bench bench-full reliability

# docs/performance.md at 1M events, side by side with PostgreSQL 15 (well under 30 minutes on 2 cores).
bench:
	go run ./bench -pg

# The same at 10M events (the size the query goals of issue 2 are stated for), ~30 minutes.
bench-full:
	go run ./bench -pg -events 10000000 -out docs/perf/bench-10m.md

# Long forms of the reliability scenarios: 20 SIGKILLs under load, 2 minutes at twice the
# sustainable rate, a full disk and a read-only data directory (the last two need root to mount), and
# the bounded-resources attack (3,000 days of partitions, 50,000 user agents, unknown keys, huge arrays).
reliability:
	go run ./bench reliability
