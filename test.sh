#!/usr/bin/env bash
# Installs every real peer the tests use (Debian packages, non-interactive) and runs all tests.
# Must run as root: the tests create mailboxes for other users, mount a tiny tmpfs, start Postfix and Dovecot.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh must run as root (sudo ./test.sh): the tests chown mailboxes and start Postfix and Dovecot" >&2
  exit 1
fi

tests/install-peers.sh

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build Bridge.sln -c Release -nologo -v q
# The Dovecot post-login client as the package ships it (Native AOT); the login tests run this very binary.
case "$(uname -m)" in aarch64) rid=linux-arm64 ;; *) rid=linux-x64 ;; esac
dotnet publish src/Bridge.DovecotCollect -c Release -r "$rid" -o .artifacts/dovecot-collect -nologo -v q
dotnet format Bridge.sln --verify-no-changes --no-restore

log=$(mktemp)
set +e
dotnet test Bridge.sln -c Release --no-build -nologo --logger "console;verbosity=normal" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# dotnet test prints "Passed: N" / "Failed: N" under "Total tests:" for each test project (the fast tier,
# tests/Bridge.UnitTests, and the integration tests, tests/Bridge.Tests); add them up into one plain line.
passed=$(awk '/^ +Passed: +[0-9]+$/ {n += $2} END {print n + 0}' "$log")
failed=$(awk '/^ +Failed: +[0-9]+$/ {n += $2} END {print n + 0}' "$log")
# Repeat each failure (name, message, first lines of the stack) last, where a CI log's tail shows it.
if [ "${failed:-0}" != 0 ]; then
  echo "Failures:"
  awk '/^  Failed /{on=1; n=0} /^  (Passed|Skipped) |^Test Run|^Results File/{on=0} on && n++ < 40' "$log"
fi
rm -f "$log"
echo "${passed:-0} passed, ${failed:-0} failed"

# The soak (tests/Bridge.Soak): every fault at once for a short while, once with a fixed seed and once with a random
# one (printed, with the command that replays it); each ends with the invariant (nothing lost, changed or doubled
# without a kill to explain it). SOAK_MINUTES sets the length of each run.
soak_status=0
for seed in 1 ""; do
  set +e
  BRIDGE_SOAK_NO_SETUP=1 tests/Bridge.Soak/run.sh --minutes "${SOAK_MINUTES:-1.5}" ${seed:+--seed "$seed"}
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then soak_status=$rc; echo "soak failed (exit $rc)"; else echo "soak passed"; fi
done
if [ "$status" -eq 0 ] && [ "$soak_status" -ne 0 ]; then status=$soak_status; fi
exit "$status"
