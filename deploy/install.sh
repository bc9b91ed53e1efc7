#!/usr/bin/env bash
# Publishes Bridge (the executable mailbridge) and installs it as the systemd service deploy/systemd/bridge.service.
# Run as root from the repository. PREFIX, ETC and UNIT_DIR move the installation (the unit is adjusted to match).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr/local/lib/bridge}
etc=${ETC:-/etc/bridge}
unit_dir=${UNIT_DIR:-/etc/systemd/system}

dotnet publish src/Bridge -c Release -o "$prefix" -nologo -v q
getent group mail >/dev/null || groupadd --system mail
id bridge >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin --gid mail bridge
install -d -m 0755 "$etc"
[ -f "$etc/appsettings.json" ] || install -m 0644 appsettings.json "$etc/appsettings.json"
install -d -m 0755 "$unit_dir"
sed -e "s#/usr/local/lib/bridge/mailbridge#$prefix/mailbridge#" -e "s#^WorkingDirectory=/etc/bridge#WorkingDirectory=$etc#" \
  deploy/systemd/bridge.service > "$unit_dir/bridge.service"
chmod 0644 "$unit_dir/bridge.service"
echo "installed: $prefix/mailbridge, $etc/appsettings.json, $unit_dir/bridge.service"

if [ -d /run/systemd/system ] && [ "$unit_dir" = /etc/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now bridge
  systemctl --no-pager status bridge || true
else
  echo "systemd is not running here: start it with 'systemctl enable --now bridge' on the target machine"
fi
