#!/usr/bin/env bash
# A three-node Vigil cluster on this machine, everything on 127.0.0.1:
# PostgreSQL (the local server), three NATS servers forming one JetStream
# cluster (the ingest stream, three replicas) and three Vigil nodes, one
# active and two standbys (docs/cluster.md).
#
#   scripts/cluster.sh start            build, start everything, print the cluster status
#   scripts/cluster.sh status           vigil cluster status
#   scripts/cluster.sh stop-node N      stop Vigil node N (1-3) with SIGTERM
#   scripts/cluster.sh start-node N     start Vigil node N again
#   scripts/cluster.sh stop             stop the Vigil nodes and NATS servers (PostgreSQL stays up)
#
# Ports: Vigil 8081-8083, NATS clients 4221-4223, NATS routes 6221-6223.
# Files and logs: $VIGIL_CLUSTER_DIR (default /tmp/vigil-cluster).
# PostgreSQL: $VIGIL_CLUSTER_POSTGRES (a connection URL); by default the local
# server that scripts/postgres.sh starts, database vigil_test, schema
# vigil_cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${VIGIL_CLUSTER_DIR:-/tmp/vigil-cluster}
pgurl=${VIGIL_CLUSTER_POSTGRES:-"host=/var/run/postgresql dbname=vigil_test"}
natsurl="nats://127.0.0.1:4221,nats://127.0.0.1:4222,nats://127.0.0.1:4223"
routes="nats://127.0.0.1:6221,nats://127.0.0.1:6222,nats://127.0.0.1:6223"

vigil_env() {
  local n=$1
  exec_env=${exec_env:-}
  $exec_env env VIGIL_STORAGE_DRIVER=postgres VIGIL_STORAGE_POSTGRES_URL="$pgurl" VIGIL_STORAGE_POSTGRES_SCHEMA=vigil_cluster \
    VIGIL_STREAM_DRIVER=nats VIGIL_STREAM_NATS_URL="$natsurl" VIGIL_STREAM_NATS_REPLICAS=3 \
    VIGIL_STORAGE_SQLITE_DIR="$dir/node-$n" VIGIL_SERVER_NODE_NAME="node-$n" VIGIL_SERVER_ADDR="127.0.0.1:808$n" \
    VIGIL_LOG_FORMAT=text "${@:2}"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_http() { # URL STATUS SECONDS
  for _ in $(seq 1 $(($3 * 5))); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = "$2" ] && return 0
    sleep 0.2
  done
  return 1
}

start_nats() {
  local i
  for i in 1 2 3; do
    alive "$dir/nats-$i.pid" && continue
    mkdir -p "$dir/nats-$i"
    "$dir/bin/nats-server" -a 127.0.0.1 -p "422$i" -n "nats-$i" -js -sd "$dir/nats-$i" \
      --cluster_name vigil --cluster "nats://127.0.0.1:622$i" --routes "$routes" -l "$dir/nats-$i.log" </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/nats-$i.pid"
  done
}

start_node() {
  local n=$1
  alive "$dir/node-$n.pid" && { echo "node-$n already runs"; return 0; }
  mkdir -p "$dir/node-$n"
  # exec: $! is then the node's own pid, which stop-node signals.
  (exec_env=exec vigil_env "$n" "$dir/bin/vigil" serve) </dev/null >>"$dir/node-$n.log" 2>&1 &
  echo $! >"$dir/node-$n.pid"
  wait_http "http://127.0.0.1:808$n/healthz" 200 60 || { echo "node-$n did not come up; see $dir/node-$n.log" >&2; exit 1; }
}

stop_pid() {
  local f=$1
  if alive "$f"; then
    kill -TERM "$(cat "$f")"
    for _ in $(seq 1 150); do alive "$f" || break; sleep 0.2; done
    alive "$f" && kill -KILL "$(cat "$f")"
  fi
  rm -f "$f"
}

case "${1:-start}" in
start)
  mkdir -p "$dir/bin"
  if [ -z "${VIGIL_CLUSTER_POSTGRES:-}" ]; then ./scripts/postgres.sh; fi
  echo "building vigil and nats-server into $dir/bin"
  go build -o "$dir/bin/vigil" ./cmd/vigil
  go build -o "$dir/bin/nats-server" github.com/nats-io/nats-server/v2
  start_nats
  vigil_env 1 "$dir/bin/vigil" migrate
  # The first node creates the keys every node must share (the webhook key
  # and the integrity signing keys); the others get copies before their
  # first start.
  start_node 1
  wait_http "http://127.0.0.1:8081/readyz" 200 60 || { echo "node-1 did not become ready; see $dir/node-1.log" >&2; exit 1; }
  for n in 2 3; do
    if [ ! -f "$dir/node-$n/webhook-key" ]; then
      mkdir -p "$dir/node-$n"
      cp "$dir/node-1/webhook-key" "$dir/node-$n/"
      cp -r "$dir/node-1/integrity" "$dir/node-$n/"
    fi
    start_node "$n"
  done
  sleep 3 # a heartbeat from each
  vigil_env 1 "$dir/bin/vigil" cluster status || true
  if [ -f "$dir/node-1/operator-key" ]; then
    echo
    echo "operator key: $dir/node-1/operator-key; the API is on http://127.0.0.1:8081 (the active node)"
  fi
  ;;
status)
  vigil_env 1 "$dir/bin/vigil" cluster status
  ;;
stop-node)
  stop_pid "$dir/node-${2:?node number}.pid"
  ;;
start-node)
  start_node "${2:?node number}"
  ;;
stop)
  for n in 1 2 3; do stop_pid "$dir/node-$n.pid"; done
  for i in 1 2 3; do stop_pid "$dir/nats-$i.pid"; done
  echo "stopped; data and logs stay in $dir"
  ;;
*)
  sed -n '2,16p' "$0" >&2
  exit 2
  ;;
esac
