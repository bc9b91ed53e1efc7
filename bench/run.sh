#!/usr/bin/env bash
# The benchmark (as root): installs the peers like the tests do, builds Release, and compares Bridge with
# Postfix local(8), Dovecot LMTP and smtp-sink on this machine; writes bench/RESULTS.md.
# Options go to the benchmark: --runs N, --messages N, --quick (one short run, to see that it works).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/run.sh must run as root (sudo bench/run.sh): it starts Postfix and Dovecot and delivers to local accounts" >&2
  exit 1
fi
tests/install-peers.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build bench/Bridge.Bench -c Release -nologo -v q
exec dotnet bench/Bridge.Bench/bin/Release/net10.0/Bridge.Bench.dll --out bench/RESULTS.md "$@"
