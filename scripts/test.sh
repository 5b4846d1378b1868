#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite: once on SQLite, then the tests that
# store tasks again on PostgreSQL (started by scripts/postgres.sh).
#
# ASYNCQUEUE_TEST_BACKENDS chooses the passes: sqlite, postgresql, or both (the default,
# "sqlite,postgresql"). Arguments, when given, go to one `swift test` run on the backend of
# ASYNCQUEUE_TEST_DATABASE (SQLite when unset).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build --build-tests
if [ $# -gt 0 ]; then
  exec swift test --skip-build "$@"
fi

backends=",${ASYNCQUEUE_TEST_BACKENDS:-sqlite,postgresql},"
for backend in ${backends//,/ }; do
  if [ "$backend" != sqlite ] && [ "$backend" != postgresql ]; then
    echo "test.sh: unknown backend '$backend' in ASYNCQUEUE_TEST_BACKENDS;" \
      "use sqlite, postgresql or both, comma-separated" >&2
    exit 2
  fi
done

# The suites that start real processes or send thousands of requests run first, on their own:
# run beside the rest on a 2-core machine, they starve the timing of every other service under
# test.
heavy='CrashRecoveryTests|CommandLineTests|MalformedInputTests|HTTPServerTests'

if [[ $backends == *,sqlite,* ]]; then
  unset ASYNCQUEUE_TEST_DATABASE
  swift test --skip-build --filter "$heavy"
  swift test --skip-build --skip "$heavy"
fi

if [[ $backends == *,postgresql,* ]]; then
  ASYNCQUEUE_TEST_DATABASE=$(scripts/postgres.sh)
  export ASYNCQUEUE_TEST_DATABASE
  # Suites that never open a store or start a service (parsers, Lua, templates, settings, the
  # SQLite schema upgrade) run in the SQLite pass only. A suite missing from this list runs
  # on both backends.
  no_storage='AddressPolicyTests|ConfigMaskingTests|HTTPServerTests|JSONTextTests'
  no_storage+='|LuaRuntimeTests|MalformedInputTests|MockProviderTests|MockProviderMediaTests'
  no_storage+='|ProviderDocExampleTests|ProviderElevenLabsTests|ProviderFalTests'
  no_storage+='|ProviderFixtureTests|ProviderLumaTests|ProviderPollConfigTests'
  no_storage+='|ProviderReplicateTests|ProviderRunwayTests|ProviderStabilityTests'
  no_storage+='|ScriptCatalogTests|PluginCatalogTests|ScriptToolsTests|SettingsTests'
  no_storage+='|StorageMigrationTests|SupportTests|RedactorTests|TimestampTests|TaskRequestTests'
  swift test --skip-build --filter 'CrashRecoveryTests|CommandLineTests'
  swift test --skip-build --skip "$heavy|$no_storage"
fi
