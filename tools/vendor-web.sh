#!/usr/bin/env bash
# The dashboard's third-party JavaScript (and Swagger UI for /docs), from the npm registry into
# server/mizumori_server/static/vendor/ with their licences: the dashboard must work on a
# closed city network, so nothing is loaded from a CDN. Run it to update a version (then
# commit the result); the server itself needs neither npm nor the network.
set -euo pipefail
LEAFLET=1.9.4
UPLOT=1.6.32
SWAGGER_UI=5.35.0
dest="$(cd "$(dirname "$0")/.." && pwd)/server/mizumori_server/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "leaflet@$LEAFLET" "uplot@$UPLOT" "swagger-ui-dist@$SWAGGER_UI" >/dev/null
rm -rf "$dest" && mkdir -p "$dest/leaflet/images" "$dest/uplot" "$dest/swagger-ui"
tar xzf "leaflet-$LEAFLET.tgz" && mv package leaflet
tar xzf "uplot-$UPLOT.tgz" && mv package uplot
tar xzf "swagger-ui-dist-$SWAGGER_UI.tgz" && mv package swagger-ui
cp leaflet/dist/leaflet.js leaflet/dist/leaflet.css leaflet/LICENSE "$dest/leaflet/"
cp leaflet/dist/images/*.png "$dest/leaflet/images/"
cp uplot/dist/uPlot.iife.min.js uplot/dist/uPlot.min.css uplot/LICENSE "$dest/uplot/"
(cd swagger-ui && cp swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css \
  favicon-32x32.png LICENSE NOTICE "$dest/swagger-ui/")
# no source maps are shipped: drop the comments that would send a browser looking for them
sed -i '/sourceMappingURL=/d' "$dest/swagger-ui/swagger-ui-bundle.js" "$dest/swagger-ui/swagger-ui.css"
printf 'leaflet %s (BSD-2-Clause)\nuplot %s (MIT)\nswagger-ui-dist %s (Apache-2.0)\n' \
  "$LEAFLET" "$UPLOT" "$SWAGGER_UI" > "$dest/VERSIONS"
echo "vendored into $dest:"
cat "$dest/VERSIONS"
