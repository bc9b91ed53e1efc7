#!/usr/bin/env bash
# The benchmark (as root): installs the peers like the tests do, builds Release, and compares Bridge with
# Postfix local(8), Dovecot LMTP and smtp-sink on this machine; writes bench/RESULTS.md.
# Options go to the benchmark: --runs N, --messages N, --quick (one short run, to see that it works), --chains,
# --logins (only the collect-at-login table).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/run.sh must run as root (sudo bench/run.sh): it starts Postfix and Dovecot and delivers to local accounts" >&2
  exit 1
fi
tests/install-peers.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build bench/Bridge.Bench -c Release -nologo -v q
# The collect-at-login table runs the package's own builds: the daemon as deploy/package.sh publishes it and the
# Dovecot post-login client (Native AOT).
case "$(uname -m)" in aarch64) rid=linux-arm64 ;; *) rid=linux-x64 ;; esac
dotnet publish src/Bridge -c Release -r "$rid" --self-contained true -p:PublishTrimmed=true -p:PublishReadyToRun=true \
  -o .artifacts/package-publish -nologo -v q
dotnet publish src/Bridge.DovecotCollect -c Release -r "$rid" -o .artifacts/dovecot-collect -nologo -v q
exec dotnet bench/Bridge.Bench/bin/Release/net10.0/Bridge.Bench.dll --out bench/RESULTS.md "$@"
