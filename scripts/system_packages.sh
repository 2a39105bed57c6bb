#!/usr/bin/env bash
# The Debian packages a make target drives, installed when missing.
#
#   scripts/system_packages.sh assets   npm (vendoring the web libraries from the npm registry)
#   scripts/system_packages.sh test     chromium, gdal-bin, python3-qgis, postgresql + postgis, nginx
#   scripts/system_packages.sh bench    the test packages and wrk
#
# As root with apt-get the missing ones are installed; otherwise this stops at once with one
# line naming them and the command that installs them.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

postgis_control() { compgen -G "/usr/share/postgresql/*/extension/postgis.control" >/dev/null; }
pg_ctl_present() { compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; }

missing=()
need() {   # need PACKAGE CHECK-COMMAND...
  local package=$1; shift
  "$@" >/dev/null 2>&1 || missing+=("$package")
}

case "${1:-}" in
  assets) need npm command -v npm ;;
  test|bench)
    need chromium test -x /usr/bin/chromium
    need gdal-bin test -x /usr/bin/ogr2ogr
    need python3-qgis /usr/bin/python3 -c "import qgis.core"
    need postgresql pg_ctl_present
    need postgis postgis_control
    need nginx test -x /usr/sbin/nginx
    if [ "$1" = bench ]; then need wrk command -v wrk; fi
    ;;
  *) echo "usage: $0 assets|test|bench" >&2; exit 2 ;;
esac

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "make $1 needs the Debian packages ${missing[*]}: install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 2
fi
echo "gdi: installing Debian packages: ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgis package only recommends the extension for the server version installed
if ! postgis_control && pg_ctl_present; then
  version=$(basename "$(dirname "$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")")")
  apt-get install -y -qq --no-install-recommends "postgresql-$version-postgis-3" >/dev/null
fi
