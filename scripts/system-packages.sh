#!/usr/bin/env bash
# Install the Debian packages kadgate builds and tests with (idempotent; quick when all are there).
#   libxml2-dev pkg-config  – libxml2, the library the XSD validation links (xmllint's library)
#   libxml2-utils           – xmllint: the independent XSD oracle in tests and the benchmark peer line
#   curl                    – used by the demo script and smoke tests
set -euo pipefail
PKGS=(libxml2-dev pkg-config libxml2-utils curl)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
