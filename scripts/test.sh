#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build --build-tests
if [ $# -gt 0 ]; then
  exec swift test --skip-build "$@"
fi

# The suites that start real processes or send thousands of requests run first, on their own:
# run beside the rest on a 2-core machine, they starve the timing of every other service under
# test.
heavy='CrashRecoveryTests|CommandLineTests|MalformedInputTests|HTTPServerTests'
swift test --skip-build --filter "$heavy"
swift test --skip-build --skip "$heavy"
