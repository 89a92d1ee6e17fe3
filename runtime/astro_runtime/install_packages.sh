#!/bin/bash
# ONBUILD helper: apt-get install the Debian packages a project lists in packages.txt.
# One package per line; blank lines, `#` comments and CRLF line endings are allowed.
set -euo pipefail
file=${1:-packages.txt}
[ -s "$file" ] || exit 0
mapfile -t packages < <(sed -e 's/\r$//' -e 's/#.*$//' -e 's/^[[:space:]]*//' \
  -e 's/[[:space:]]*$//' "$file" | grep -v '^$' || true)
[ ${#packages[@]} -gt 0 ] || exit 0
echo "runtime: installing Debian packages: ${packages[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/cache/apt/*.bin
