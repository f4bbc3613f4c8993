#!/usr/bin/env bash
# Debian packages the test suite uses as real clients, installed when missing (as root, or
# through sudo): GDAL's ogrinfo (the GIS client), chromium (the dashboard's browser tests)
# and a Japanese font for it (else the screenshots show empty boxes for Japanese text).
set -euo pipefail
PACKAGES="gdal-bin chromium fonts-ipafont-gothic"
missing=()
for pkg in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
[ ${#missing[@]} -gt 0 ] || exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${missing[*]} (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q || true  # a stale list still installs from a reachable mirror
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
