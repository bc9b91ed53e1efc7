#!/usr/bin/env bash
# Installs every real peer the tests and the benchmark use (Debian packages, non-interactive, as root): only
# what is missing is installed. Exim is unpacked into /var/cache/bridge-test-peers/exim (it conflicts with postfix).
# Failure: apt-get's error and a non-zero exit.
set -euo pipefail

packages=(swaks postfix dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-submissiond procmail python3 util-linux openssl systemd time lintian man-db adduser gcc libc6-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing test peers: ${missing[*]}"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# Exim conflicts with the postfix package: its binaries are unpacked next to the tests instead of installed.
exim_root=/var/cache/bridge-test-peers/exim
if [ ! -x "$exim_root/usr/sbin/exim4" ]; then
  echo "Unpacking Exim for the tests into $exim_root"
  [ -n "$(apt-cache policy exim4-daemon-light 2>/dev/null | grep Candidate)" ] || apt-get update -qq
  libs=$(apt-cache depends exim4-daemon-light | awk '/Depends: lib/ {print $2}')
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $libs >/dev/null
  debs=$(mktemp -d)
  chmod 777 "$debs"
  (cd "$debs" && apt-get download exim4-daemon-light exim4-base >/dev/null 2>&1)
  mkdir -p "$exim_root"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$exim_root"; done
  rm -rf "$debs"
fi
id Debian-exim >/dev/null 2>&1 || useradd --system --no-create-home Debian-exim
