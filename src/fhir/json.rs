//! The hardened JSON reader for FHIR input: bytes in, a `serde_json::Value` (or none) plus findings out.
//!
//! Everything kadgate reads of a FHIR message goes through here. Defences, all applied while reading:
//! - a size cap (checked before a byte is parsed), a nesting-depth cap and a cap on the number of JSON
//!   values (a `Value` costs 20–30× the bytes of a tiny `[]`, so the value cap bounds memory);
//! - the body must be UTF-8 (RFC 8259 §8.1); a leading byte-order mark is skipped with a warning;
//! - duplicate object keys are reported with their FHIRPath-style location. `serde_json::Value`'s own
//!   `Deserialize` silently keeps the last one, so the value is built by our own visitor on top of
//!   `serde_json`'s parser (which stays responsible for the grammar, escapes and number lexing). We use
//!   serde_json rather than a crate made for duplicate detection because the rest of kadgate (and the
//!   FHIR decoder) work on `serde_json::Value`, and the visitor also enforces the depth and value caps
//!   in the same single pass, with no second tree;
//! - numbers that do not fit an `f64` (`1e999999`, ten thousand digits) are a finding, never a panic;
//!   integers keep their integer form (`1` and `1.0` stay distinguishable for FHIR `integer`).
//!
//! Syntax errors carry `line N, column M` as their path; duplicate keys carry the object path
//! (`Bundle.entry[1].resource.status`). A duplicate key is reported but the value is still handed
//! on (the last occurrence wins) so that the structure checks can report everything else at once.
//!
//! Invariant: no I/O, no global state; never panics on any input. Must not interpret FHIR: that is
//! `validate.rs`'s job.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::finding::{codes, Finding};

/// Caps applied while reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted body, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of arrays and objects. serde_json's own recursion guard (128) stays in place
    /// underneath, so values above 127 behave like 127.
    pub max_depth: usize,
    /// Most JSON values (scalars, arrays and objects) in one body.
    pub max_values: usize,
}

impl Default for Limits {
    /// Fits every real FHIR message with room (a 20 MiB body, attachments included); the depth of a
    /// document Bundle inside a message Bundle is about 12.
    fn default() -> Self {
        Limits {
            max_bytes: 20 * 1024 * 1024,
            max_depth: 100,
            max_values: 2_000_000,
        }
    }
}

/// The result of reading one body.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The parsed value; `None` when the body is not well-formed JSON or breaks a cap.
    pub value: Option<Value>,
    /// What was wrong (errors) or tolerated (warnings).
    pub findings: Vec<Finding>,
}

impl Parsed {
    /// True when no finding is an error (a byte-order mark alone is only a warning).
    pub fn well_formed(&self) -> bool {
        self.value.is_some() && !self.findings.iter().any(Finding::is_error)
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Read `bytes` as one JSON text under `limits`.
pub fn read(bytes: &[u8], limits: &Limits) -> Parsed {
    let mut findings = Vec::new();
    let fail = |findings: Vec<Finding>| Parsed {
        value: None,
        findings,
    };
    if bytes.len() > limits.max_bytes {
        findings.push(Finding::error(
            codes::JSON_TOO_LARGE,
            "",
            format!(
                "the body has {} bytes; the limit is {}",
                bytes.len(),
                limits.max_bytes
            ),
        ));
        return fail(findings);
    }
    let mut body = bytes;
    if let Some(rest) = body.strip_prefix(BOM) {
        findings.push(Finding::warning(
            codes::JSON_BYTE_ORDER_MARK,
            "line 1, column 1",
            "the body starts with a UTF-8 byte-order mark; it was skipped",
        ));
        body = rest;
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let ok = &body[..e.valid_up_to()];
            // The valid prefix is UTF-8 by definition; count lines and characters on it.
            let prefix = std::str::from_utf8(ok).unwrap_or_default();
            let (line, column) = line_column(prefix);
            findings.push(Finding::error(
                codes::JSON_NOT_UTF8,
                format!("line {line}, column {column}"),
                "the body is not UTF-8 (JSON must be UTF-8)",
            ));
            return fail(findings);
        }
    };
    if text.trim_matches([' ', '\t', '\r', '\n']).is_empty() {
        findings.push(Finding::error(codes::JSON_EMPTY, "", "the body is empty"));
        return fail(findings);
    }
    let mut ctx = Ctx {
        depth: 0,
        max_depth: limits.max_depth,
        values: 0,
        max_values: limits.max_values,
        dups: Vec::new(),
        stop: None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = Seed { ctx: &mut ctx }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match result {
        Ok(value) => {
            let root = match value.get("resourceType") {
                Some(Value::String(rt)) if !rt.is_empty() => rt.as_str(),
                _ => "$",
            };
            for dup in &ctx.dups {
                let mut path = String::from(root);
                for seg in dup.iter().rev() {
                    seg.push_to(&mut path);
                }
                let key = match dup.first() {
                    Some(Seg::Key(k)) => k.as_str(),
                    _ => "",
                };
                findings.push(Finding::error(
                    codes::JSON_DUPLICATE_KEY,
                    path,
                    format!(
                        "the key \"{}\" occurs more than once in one object; the last one was read",
                        printable_key(key)
                    ),
                ));
            }
            Parsed {
                value: Some(value),
                findings,
            }
        }
        Err(e) => {
            findings.push(error_finding(&e, ctx.stop, limits));
            fail(findings)
        }
    }
}

/// Keys are element names, never patient data; still, cap what is echoed and drop control characters.
fn printable_key(k: &str) -> String {
    k.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn line_column(prefix: &str) -> (usize, usize) {
    let line = prefix.matches('\n').count() + 1;
    let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn error_finding(e: &serde_json::Error, stop: Option<Stop>, limits: &Limits) -> Finding {
    let path = format!("line {}, column {}", e.line(), e.column());
    let text = e.to_string();
    match stop {
        Some(Stop::TooDeep) => Finding::error(
            codes::JSON_TOO_DEEP,
            path,
            format!(
                "arrays and objects nest deeper than {} levels",
                limits.max_depth
            ),
        ),
        Some(Stop::TooManyValues) => Finding::error(
            codes::JSON_TOO_MANY_VALUES,
            path,
            format!("the body has more than {} JSON values", limits.max_values),
        ),
        None if text.starts_with("recursion limit exceeded") => Finding::error(
            codes::JSON_TOO_DEEP,
            path,
            "arrays and objects nest too deep",
        ),
        None if text.starts_with("number out of range") => Finding::error(
            codes::JSON_NUMBER_OUT_OF_RANGE,
            path,
            "a number is too large to be read",
        ),
        None => {
            // serde_json's message without its " at line N column M" suffix (the path has it).
            let msg = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(m, _)| m);
            Finding::error(
                codes::JSON_NOT_WELL_FORMED,
                path,
                format!("not well-formed JSON: {msg}"),
            )
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TooDeep,
    TooManyValues,
}

/// One step of a duplicate key's location, collected innermost first while the stack unwinds.
enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    fn push_to(&self, path: &mut String) {
        match self {
            Seg::Key(k) => {
                path.push('.');
                path.push_str(&printable_key(k));
            }
            Seg::Index(i) => {
                path.push('[');
                path.push_str(&i.to_string());
                path.push(']');
            }
        }
    }
}

struct Ctx {
    depth: usize,
    max_depth: usize,
    values: usize,
    max_values: usize,
    /// Each duplicate's location, innermost segment first.
    dups: Vec<Vec<Seg>>,
    stop: Option<Stop>,
}

impl Ctx {
    fn count<E: de::Error>(&mut self) -> Result<(), E> {
        self.values += 1;
        if self.values > self.max_values {
            self.stop = Some(Stop::TooManyValues);
            return Err(E::custom("too many values"));
        }
        Ok(())
    }
    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        self.count()?;
        self.depth += 1;
        if self.depth > self.max_depth {
            self.stop = Some(Stop::TooDeep);
            return Err(E::custom("nesting too deep"));
        }
        Ok(())
    }
    /// Add `seg` to every duplicate found since `since` (they all sit below this step).
    fn prefix(&mut self, since: usize, seg: impl Fn() -> Seg) {
        for d in &mut self.dups[since..] {
            d.push(seg());
        }
    }
}

/// Builds a `Value` while counting depth and values and noting duplicate keys.
struct Seed<'c> {
    ctx: &'c mut Ctx,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.ctx.count()?;
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.ctx.count()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.ctx.count()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.ctx.count()?;
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.ctx.count()?;
        // serde_json never produces a non-finite f64; keep the guard anyway.
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.ctx.count()?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.ctx.count()?;
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.ctx.enter()?;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        loop {
            let since = self.ctx.dups.len();
            let Some(v) = seq.next_element_seed(Seed {
                ctx: &mut *self.ctx,
            })?
            else {
                break;
            };
            let i = out.len();
            self.ctx.prefix(since, || Seg::Index(i));
            out.push(v);
        }
        self.ctx.depth -= 1;
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.ctx.enter()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let since = self.ctx.dups.len();
            let v = map.next_value_seed(Seed {
                ctx: &mut *self.ctx,
            })?;
            self.ctx.prefix(since, || Seg::Key(key.clone()));
            if out.contains_key(&key) {
                self.ctx.dups.push(vec![Seg::Key(key.clone())]);
            }
            out.insert(key, v);
        }
        self.ctx.depth -= 1;
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes_of(p: &Parsed) -> Vec<&str> {
        p.findings.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn duplicate_keys_are_located() {
        let p = read(
            br#"{"resourceType":"Bundle","entry":[{},{"resource":{"status":"a","status":"b"}}]}"#,
            &Limits::default(),
        );
        assert_eq!(codes_of(&p), [codes::JSON_DUPLICATE_KEY]);
        assert_eq!(p.findings[0].path, "Bundle.entry[1].resource.status");
        assert!(!p.well_formed());
        assert_eq!(p.value.unwrap()["entry"][1]["resource"]["status"], "b");
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let p = read(b"{\n  \"a\": [1,\n  }", &Limits::default());
        assert_eq!(codes_of(&p), [codes::JSON_NOT_WELL_FORMED]);
        assert!(p.findings[0].path.starts_with("line 3, column"));
        assert!(p.value.is_none());
    }

    #[test]
    fn caps() {
        let small = Limits {
            max_bytes: 12,
            max_depth: 3,
            max_values: 5,
        };
        assert_eq!(
            codes_of(&read(b"[1,2,3,4,5,6,7]", &small)),
            [codes::JSON_TOO_LARGE]
        );
        assert_eq!(
            codes_of(&read(b"[[[[1]]]]", &small)),
            [codes::JSON_TOO_DEEP]
        );
        assert_eq!(
            codes_of(&read(b"[1,1,1,1,1]", &small)),
            [codes::JSON_TOO_MANY_VALUES]
        );
        assert!(read(b"[[[1]]]", &small).well_formed());
    }

    #[test]
    fn numbers_bom_utf8_empty() {
        let l = Limits::default();
        assert_eq!(
            codes_of(&read(b"[1e999999]", &l)),
            [codes::JSON_NUMBER_OUT_OF_RANGE]
        );
        let p = read(b"\xEF\xBB\xBF{\"a\":1.0,\"b\":1}", &l);
        assert_eq!(codes_of(&p), [codes::JSON_BYTE_ORDER_MARK]);
        assert!(p.well_formed());
        let v = p.value.unwrap();
        assert!(v["a"].is_f64() && v["b"].is_u64());
        let p = read(b"{\"a\":\"\xC3\x28\"}", &l);
        assert_eq!(codes_of(&p), [codes::JSON_NOT_UTF8]);
        assert_eq!(p.findings[0].path, "line 1, column 7");
        assert_eq!(codes_of(&read(b" \n ", &l)), [codes::JSON_EMPTY]);
        assert_eq!(codes_of(&read(b"", &l)), [codes::JSON_EMPTY]);
    }
}
