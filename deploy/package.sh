#!/usr/bin/env bash
# Builds dist/bridge_<version>-<revision>_<arch>.deb from this checkout with dpkg-deb: a self-contained, trimmed,
# ReadyToRun publish in /usr/lib/bridge (no .NET SDK or Microsoft package source needed on the target; why this
# form: bench/README.md, "Package"), the command /usr/sbin/mailbridge, the conffile /etc/bridge/appsettings.json, the
# systemd unit, mailbridge(8) and mailbridge.json(5) rendered from README.md (deploy/man/render.py), the MTA and
# Dovecot snippets as examples, copyright, lintian overrides.
# The command is mailbridge, the name the build gives the executable: Debian's iproute2 (priority important, on every
# system) owns /usr/sbin/bridge (/sbin/bridge with merged /usr) and bridge(8), the Linux bridge tool; dpkg refuses to
# overwrite them, and diverting them would take that tool away from the machine. The package, its directories and
# the unit keep the name bridge.
# Environment: ARCH (amd64, arm64; default: this machine's), REVISION (default 1), OUT (default dist),
# PUBLISH_DIR (reuse an earlier publish of the same architecture instead of publishing again).
# Failure: exits non-zero with the failing step's message; nothing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${ARCH:-$(dpkg --print-architecture)}
case "$arch" in
  amd64) rid=linux-x64 ;;
  arm64) rid=linux-arm64 ;;
  *) echo "package.sh: unsupported architecture $arch (amd64 or arm64)" >&2; exit 64 ;;
esac
revision=${REVISION:-1}
command=mailbridge
out=${OUT:-dist}
upstream=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' src/Bridge/Bridge.csproj)
version="$upstream-$revision"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
publish=${PUBLISH_DIR:-$stage/publish}
if [ ! -x "$publish/$command" ]; then
  dotnet publish src/Bridge -c Release -r "$rid" --self-contained true -p:PublishTrimmed=true -p:PublishReadyToRun=true \
    -o "$publish" -nologo -v q
fi

root=$stage/root
install -d -m 0755 "$root/DEBIAN" "$root/usr/lib/bridge" "$root/usr/sbin" "$root/etc/bridge" "$root/lib/systemd/system" \
  "$root/usr/share/man/man8" "$root/usr/share/man/man5" "$root/usr/share/doc/bridge/examples"

# The program: everything the publish made but debug symbols; the .NET runtime's own native libraries stripped.
(cd "$publish" && find . -type f ! -name '*.pdb' ! -name '*.dbg' -print0) | while IFS= read -r -d '' file; do
  install -D -m 0644 "$publish/$file" "$root/usr/lib/bridge/$file"
done
chmod 0755 "$root/usr/lib/bridge/$command"
# strip for the package's architecture: the native one, or the cross binutils (binutils-aarch64-linux-gnu).
case "$arch" in
  "$(dpkg --print-architecture)") strip=strip ;;
  arm64) strip=aarch64-linux-gnu-strip ;;
esac
if command -v "$strip" >/dev/null 2>&1; then
  find "$root/usr/lib/bridge" -name '*.so' -exec "$strip" --strip-unneeded --remove-section=.comment --remove-section=.note {} +
else
  echo "package.sh: $strip not found: the runtime's native libraries stay unstripped (apt-get install binutils-aarch64-linux-gnu)" >&2
fi
ln -s "../lib/bridge/$command" "$root/usr/sbin/$command"

install -m 0644 appsettings.json "$root/etc/bridge/appsettings.json"
sed -e "s#^ExecStart=.*#ExecStart=/usr/sbin/$command#" -e 's#(installed by deploy/install.sh)#(installed by the bridge package)#' \
  deploy/systemd/bridge.service > "$root/lib/systemd/system/bridge.service"
chmod 0644 "$root/lib/systemd/system/bridge.service"

python3 deploy/man/render.py README.md "$stage" "$upstream" "$(date -u +%Y-%m-%d -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")" "$command"
gzip -9n -c "$stage/$command.8" > "$root/usr/share/man/man8/$command.8.gz"
gzip -9n -c "$stage/$command.json.5" > "$root/usr/share/man/man5/$command.json.5.gz"

for dir in postfix exim dovecot; do
  install -d -m 0755 "$root/usr/share/doc/bridge/examples/$dir"
  install -m 0644 deploy/$dir/* "$root/usr/share/doc/bridge/examples/$dir/"
done
# Dovecot's post-login client (30-bridge-collect.conf runs it at every login): Native AOT, so a login costs a few ms.
# Native AOT links with the target's toolchain: another architecture needs its cross linker (see bench/README.md).
collect_out=$stage/dovecot-collect
if ! dotnet publish src/Bridge.DovecotCollect -c Release -r "$rid" -o "$collect_out" -nologo -v q; then
  echo "package.sh: could not publish the Native AOT client for $arch (it needs gcc and, for another architecture, its cross linker, e.g. gcc-aarch64-linux-gnu)" >&2
  exit 1
fi
install -m 0755 "$collect_out/dovecot-collect" "$root/usr/lib/bridge/dovecot-collect"
if command -v "$strip" >/dev/null 2>&1; then
  "$strip" --strip-unneeded "$root/usr/lib/bridge/dovecot-collect"
fi
install -m 0644 deploy/debian/copyright "$root/usr/share/doc/bridge/copyright"
install -m 0644 SECURITY.md "$root/usr/share/doc/bridge/SECURITY.md"
install -D -m 0644 deploy/debian/lintian-overrides "$root/usr/share/lintian/overrides/bridge"
{
  echo "bridge ($version) unstable; urgency=medium"
  echo
  echo "  * Package built from commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo
  echo " -- Bridge maintainers <maintainers@bridge.example.org>  $(date -R -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n > "$root/usr/share/doc/bridge/changelog.Debian.gz"
chmod 0644 "$root/usr/share/doc/bridge/changelog.Debian.gz"

install -m 0644 deploy/debian/conffiles "$root/DEBIAN/conffiles"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" deploy/debian/control.in > "$root/DEBIAN/control"

mkdir -p "$out"
deb="$out/bridge_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group -Zxz "$root" "$deb" >/dev/null
echo "$deb"
