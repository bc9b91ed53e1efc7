#!/usr/bin/env bash
# The soak (as root): every fault at once against a real Postfix, Dovecot and Bridge, then the invariant.
#   sudo tests/Bridge.Soak/run.sh [--minutes N] [--seed S] [--rss-limit-mb N] [--out FILE]
# Installs the peers as test.sh does and builds Release first; exit code 0 only when the invariant held.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
  echo "tests/Bridge.Soak/run.sh must run as root: it mounts a tmpfs, starts Postfix and Dovecot, kills Bridge" >&2
  exit 1
fi
if [ "${BRIDGE_SOAK_NO_SETUP:-}" != 1 ]; then
  tests/install-peers.sh
  export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
  dotnet build tests/Bridge.Soak -c Release -nologo -v q
  case "$(uname -m)" in aarch64) rid=linux-arm64 ;; *) rid=linux-x64 ;; esac
  dotnet publish src/Bridge.DovecotCollect -c Release -r "$rid" -o .artifacts/dovecot-collect -nologo -v q
fi
exec dotnet tests/Bridge.Soak/bin/Release/net10.0/Bridge.Soak.dll "$@"
