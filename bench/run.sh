#!/bin/sh
# Runs one benchmark scenario, or B1-B5: bench/run.sh b1|b2|b3|b4|b5|all|cluster
# Installs the tools it needs (wrk, redis-server; celery, redis and aiohttp for B5; PostgreSQL
# through scripts/postgres.sh for cluster), builds the release binaries into $AQ_BUILD (default
# /tmp/aq-build-bench), and sends load to 127.0.0.1 only. `all` leaves out cluster, which takes
# about 7 minutes and needs root for PostgreSQL. See docs/benchmarks.md for what each scenario
# measures.
set -eu
cd "$(dirname "$0")/.."
scenario="${1:?usage: bench/run.sh b1|b2|b3|b4|b5|all|cluster}"

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=""
for tool in wrk redis-server; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing ${tool}"
done
if [ -n "$missing" ]; then
  sudo_if_needed apt-get update -qq
  sudo_if_needed apt-get install -y -qq $missing
fi
if [ "$scenario" = b5 ] || [ "$scenario" = all ]; then
  python3 -c "import celery, redis, aiohttp, requests" 2>/dev/null ||
    python3 -m pip install -q celery redis aiohttp requests
fi

export AQ_BUILD="${AQ_BUILD:-/tmp/aq-build-bench}"
swift build -c release --scratch-path "$AQ_BUILD" >/dev/null

run() {
  case "$1" in
    b5) python3 bench/comparison.py ;;
    cluster) python3 bench/cluster.py ;;
    *) python3 bench/scenarios.py "$1" ;;
  esac
}
if [ "$scenario" = all ]; then
  for name in b1 b2 b3 b4 b5; do run "$name"; done
else
  run "$scenario"
fi
