#!/usr/bin/env bash
# The dashboard's third-party JavaScript, from the npm registry into
# server/mizumori_server/static/vendor/ with their licences: the dashboard must work on a
# closed city network, so nothing is loaded from a CDN. Run it to update a version (then
# commit the result); the server itself needs neither npm nor the network.
set -euo pipefail
LEAFLET=1.9.4
UPLOT=1.6.32
dest="$(cd "$(dirname "$0")/.." && pwd)/server/mizumori_server/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "leaflet@$LEAFLET" "uplot@$UPLOT" >/dev/null
rm -rf "$dest" && mkdir -p "$dest/leaflet/images" "$dest/uplot"
tar xzf "leaflet-$LEAFLET.tgz" && mv package leaflet
tar xzf "uplot-$UPLOT.tgz" && mv package uplot
cp leaflet/dist/leaflet.js leaflet/dist/leaflet.css leaflet/LICENSE "$dest/leaflet/"
cp leaflet/dist/images/*.png "$dest/leaflet/images/"
cp uplot/dist/uPlot.iife.min.js uplot/dist/uPlot.min.css uplot/LICENSE "$dest/uplot/"
printf 'leaflet %s (BSD-2-Clause)\nuplot %s (MIT)\n' "$LEAFLET" "$UPLOT" > "$dest/VERSIONS"
echo "vendored into $dest:"
cat "$dest/VERSIONS"
