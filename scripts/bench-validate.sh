#!/usr/bin/env bash
# Batch validation cost: `kadgate validate --json` over the 200 files that VALIDATION.md marks VALID
# (one process: schema set compiled once, then scan + decode + semantic checks + XSD per file),
# against xmllint run once per file over the same 200 files with one wrapper schema that imports
# every namespace of catalog.xml (schema compiled again for every file, XSD validation only).
#   usage: scripts/bench-validate.sh [RUNS=3]
# Needs hyperfine and xmllint (libxml2-utils); installs them with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
STANDARDS="${KADGATE_STANDARDS_DIR:-$(cd .. && pwd)/shared/standards}"
KITH="$(cd "$STANDARDS/kith" && pwd)"
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
command -v xmllint >/dev/null || { apt-get update -qq && apt-get install -y -qq libxml2-utils; }
command -v python3 >/dev/null || { echo "python3 is needed to read the hyperfine JSON" >&2; exit 2; }
cargo build --release -q
KADGATE="$PWD/target/release/kadgate"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# The files marked VALID, absolute paths, one per line (some names contain spaces).
grep '^| VALID | `' "$KITH/VALIDATION.md" | sed 's/^| VALID | `\([^`]*\)`.*/\1/' \
  | while IFS= read -r rel; do printf '%s/%s\n' "$KITH" "$rel"; done > "$WORK/files.txt"
mapfile -t FILES < "$WORK/files.txt"
echo "files marked VALID: ${#FILES[@]} ($(cat "${FILES[@]}" | wc -c) bytes)"

# The wrapper schema: common/ first (kith.xsd, felleskomponent1, xmldsig, xml.xsd, base64, EPJ) so
# the bare file-name imports inside msghead/ etc. find their namespace already loaded, then every
# other namespace of the catalog, each with the absolute path of its local file.
EIFF_NS="http://www.nav.no/xml/eiff/2/"
{
  echo '<?xml version="1.0" encoding="UTF-8"?>'
  echo '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">'
  grep -o '<uri name="[^"]*" uri="[^"]*"' "$KITH/catalog.xml" \
    | sed 's/<uri name="\([^"]*\)" uri="\([^"]*\)"/\1 \2/' \
    | awk '{ print ($2 ~ /^common\// ? 0 : 1), $1, $2 }' | sort -s -k1,1n \
    | while read -r _ ns rel; do
        printf '  <xs:import namespace="%s" schemaLocation="%s/%s"/>\n' "$ns" "$KITH" "$rel"
      done
  # NAV's EI_fellesformat envelope has no schema in the standards folder; kadgate validates from the
  # first KITH child, so xmllint gets a stub envelope whose KITH children are validated (lax).
  printf '  <xs:import namespace="%s" schemaLocation="%s/eiff-stub.xsd"/>\n' "$EIFF_NS" "$WORK"
  echo '</xs:schema>'
} > "$WORK/wrapper.xsd"
cat > "$WORK/eiff-stub.xsd" <<XSD
<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="$EIFF_NS" elementFormDefault="qualified">
  <xs:element name="EI_fellesformat">
    <xs:complexType>
      <xs:sequence>
        <xs:any namespace="##any" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
</xs:schema>
XSD
echo "wrapper schema: $(grep -c '<xs:import' "$WORK/wrapper.xsd") imports"

# xmllint once per file; libxml2 warns about namespaces it skips re-importing: silenced.
cat > "$WORK/xmllint-each.sh" <<SH
#!/usr/bin/env bash
while IFS= read -r f; do
  xmllint --noout --nonet --schema "$WORK/wrapper.xsd" "\$f" 2>/dev/null || echo "xmllint rejects: \$f" >&2
done < "$WORK/files.txt"
SH
chmod +x "$WORK/xmllint-each.sh"

# Agreement first: both must call all 200 files valid.
echo "checking verdicts..."
if ! "$KADGATE" validate --json --standards "$STANDARDS" "${FILES[@]}" > "$WORK/kadgate.jsonl"; then
  echo "kadgate validate: exit != 0 (files without an ok receipt: $(grep -vc '"apprec":{"status":"ok"' "$WORK/kadgate.jsonl" || true); XSD verdict below)" >&2
fi
KBAD=$(grep -vc '"schema_valid":true' "$WORK/kadgate.jsonl" || true)
echo "kadgate: $(wc -l < "$WORK/kadgate.jsonl") reports, $KBAD not schema-valid"
"$WORK/xmllint-each.sh" 2> "$WORK/xmllint-rejects.txt"
XBAD=$(wc -l < "$WORK/xmllint-rejects.txt")
echo "xmllint: $XBAD of ${#FILES[@]} rejected"
if [ "$XBAD" -ne 0 ] || [ "$KBAD" -ne 0 ]; then
  cat "$WORK/xmllint-rejects.txt" >&2
  head -3 "$WORK/xmllint-rejects.txt" | sed 's/^xmllint rejects: //' | while IFS= read -r f; do
    xmllint --noout --nonet --schema "$WORK/wrapper.xsd" "$f" 2>&1 | grep -v 'Skipping import' | head -5 >&2
  done
  echo "verdicts disagree; not timing" >&2
  exit 1
fi

# Negative control: the wrapper really validates (a file VALIDATION.md marks INVALID is rejected).
CONTROL="$KITH/henvisning/examples/sarepta-akseptansetest/TestcaseHenvisningMottak/Case1-20-b.xml"
if xmllint --noout --nonet --schema "$WORK/wrapper.xsd" "$CONTROL" 2>/dev/null; then
  echo "xmllint accepts the INVALID control file $CONTROL: wrapper schema not effective" >&2
  exit 1
fi
echo "xmllint rejects the INVALID control file, as it should"

# Timing. kadgate runs directly (-N, no shell), its 200 paths quoted for hyperfine's word splitting.
KCMD="$(printf '%q ' "$KADGATE" validate --json --standards "$STANDARDS" "${FILES[@]}")"
# kadgate exits 1 when a file has semantic findings (schema-valid or not): -i.
hyperfine --warmup 1 --runs "$RUNS" -N -i --style basic --output=null \
  --export-json "$WORK/a.json" -n "kadgate validate --json (200 files, one process)" \
  "$KCMD"
hyperfine --warmup 1 --runs "$RUNS" -N --style basic \
  --export-json "$WORK/b.json" -n "xmllint --schema wrapper.xsd, once per file (200 processes)" \
  "$WORK/xmllint-each.sh"

python3 - "$WORK/a.json" "$WORK/b.json" "${#FILES[@]}" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["results"][0]
b = json.load(open(sys.argv[2]))["results"][0]
n = int(sys.argv[3])
print()
print(f"(a) kadgate validate, all {n} files: mean {a['mean']*1000:.1f} ms (median {a['median']*1000:.1f} ms, "
      f"{a['mean']/n*1000:.2f} ms/file incl. schema compile)")
print(f"(b) xmllint per file:          mean {b['mean']/n*1000:.2f} ms/file, total {b['mean']*1000:.1f} ms "
      f"(median {b['median']*1000:.1f} ms)")
print(f"ratio b_total / a_total: {b['mean']/a['mean']:.1f}x")
PY
