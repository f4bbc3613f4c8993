#!/usr/bin/env bash
# Debian packages the test suite drives as real clients, installed when their command is
# missing (as root, or through sudo). One line per package: command, then package.
set -euo pipefail
PACKAGES="
ogrinfo gdal-bin
"
missing=()
while read -r cmd pkg; do
  [ -n "${cmd:-}" ] || continue
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done <<< "$PACKAGES"
[ ${#missing[@]} -gt 0 ] || exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${missing[*]} (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q || true  # a stale list still installs from a reachable mirror
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
