#!/usr/bin/env bash
# Starts the local PostgreSQL 15 cluster for the test suite and makes sure the
# current user has a role and a database (vigil_test) to test in.
#   scripts/postgres.sh          start it or fail
#   scripts/postgres.sh --try    start it if it is installed; say so and succeed if not
# The PostgreSQL tests read VIGIL_TEST_POSTGRES (a connection URL); without it
# they use the unix socket in /var/run/postgresql and the database vigil_test.
set -euo pipefail
try=false
[ "${1:-}" = --try ] && try=true

fail() {
  if $try; then
    echo "scripts/postgres.sh: $1; the PostgreSQL tests will be skipped" >&2
    exit 0
  fi
  echo "scripts/postgres.sh: $1" >&2
  exit 1
}

command -v pg_lsclusters >/dev/null || fail "PostgreSQL is not installed (pg_lsclusters not found)"
read -r ver cluster status < <(pg_lsclusters -h | awk 'NR==1 {print $1, $2, $4}') || fail "no PostgreSQL cluster is configured"
if [ "$status" != online ]; then
  [ "$(id -u)" = 0 ] || fail "cluster $ver/$cluster is $status and only root can start it"
  echo "scripts/postgres.sh: starting PostgreSQL (pg_ctlcluster $ver $cluster start)"
  pg_ctlcluster "$ver" "$cluster" start || fail "pg_ctlcluster $ver $cluster start failed"
fi

me=$(id -un)
for _ in $(seq 1 50); do
  runuser -u postgres -- psql -Atqc 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.2
done
if [ "$(id -u)" = 0 ]; then
  psqlpg() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -Atq "$@"; }
  if [ -z "$(psqlpg -c "SELECT 1 FROM pg_roles WHERE rolname = '$me'")" ]; then
    psqlpg -c "CREATE ROLE \"$me\" LOGIN SUPERUSER" || fail "cannot create role $me"
  fi
  if [ -z "$(psqlpg -c "SELECT 1 FROM pg_database WHERE datname = 'vigil_test'")" ]; then
    psqlpg -c "CREATE DATABASE vigil_test OWNER \"$me\"" || fail "cannot create database vigil_test"
  fi
fi
psql -h /var/run/postgresql -d vigil_test -Atqc 'SELECT 1' >/dev/null || fail "cannot connect to vigil_test as $me"
echo "scripts/postgres.sh: PostgreSQL $ver is up; tests use database vigil_test"
