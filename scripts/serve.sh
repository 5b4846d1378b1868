#!/usr/bin/env bash
# Installs what is missing, builds a release binary and starts the service on its embedded
# defaults: SQLite in ./data, http://127.0.0.1:8080. Extra arguments go to 'asyncqueue serve'.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build -c release --product asyncqueue
exec .build/release/asyncqueue serve "$@"
