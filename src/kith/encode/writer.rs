//! A small indenting XML writer and the value conversions every KITH encoder needs (codes, OIDs,
//! dates, quantities). Text and attribute values go through [`crate::kith::apprec::esc`].
//!
//! Must not: decide what a message says — the document encoders do that; this only writes.

use crate::kith::apprec::{esc, normalise_datetime};
use crate::model::{Code, Quantity};

/// DN written on a required coded element the model has no value for: the element is present
/// without `V`, saying "not given" (KITH `CS`/`CV` make `V` optional).
pub const NOT_GIVEN: &str = "Ikke oppgitt";

/// Code systems written as FHIR-style URIs that have a Volven OID.
const URI_OIDS: &[(&str, &str)] = &[
    ("http://hl7.org/fhir/sid/icd-10", "2.16.578.1.12.4.1.1.7110"),
    (
        "http://hl7.org/fhir/sid/icd-10-no",
        "2.16.578.1.12.4.1.1.7110",
    ),
    ("http://hl7.org/fhir/sid/icpc-2", "2.16.578.1.12.4.1.1.7170"),
    (
        "urn:oid:2.16.578.1.12.4.1.1.7110",
        "2.16.578.1.12.4.1.1.7110",
    ),
];

/// The `S` attribute for a code system: an OID as is, `urn:oid:` stripped, a few well-known URIs
/// mapped; anything else cannot be written (KITH `S` is an OID).
pub fn oid(system: &str) -> Option<String> {
    let s = system.trim();
    if let Some((_, o)) = URI_OIDS.iter().find(|(u, _)| u.eq_ignore_ascii_case(s)) {
        return Some((*o).to_string());
    }
    let s = s.strip_prefix("urn:oid:").unwrap_or(s);
    let ok = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && s.bytes().last().is_some_and(|b| b.is_ascii_digit());
    ok.then(|| s.to_string())
}

fn valid_date(s: &str) -> bool {
    s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// An `xs:date`: the date part of a date or date-time, if it is a valid date.
pub fn xs_date(s: &str) -> Option<String> {
    let d = s.trim().get(..10)?;
    valid_date(d).then(|| d.to_string())
}

/// An `xs:dateTime` (a bare date gets `T00:00:00`).
pub fn xs_datetime(s: &str) -> Option<String> {
    normalise_datetime(s)
}

/// A KITH `TS` value: a valid date stays a date, anything else must be a valid date-time.
pub fn ts(s: &str) -> Option<String> {
    let t = s.trim();
    if valid_date(t) {
        return Some(t.to_string());
    }
    if t.contains('T') {
        return normalise_datetime(t);
    }
    None
}

/// Writes indented XML into a string.
#[derive(Default)]
pub struct Xml {
    out: String,
    stack: Vec<String>,
}

impl Xml {
    pub fn new() -> Self {
        let mut x = Xml::default();
        x.out
            .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x
    }

    fn indent(&mut self) {
        for _ in 0..self.stack.len() {
            self.out.push_str("  ");
        }
    }

    fn start_tag(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (k, v) in attrs {
            self.out.push(' ');
            self.out.push_str(k);
            self.out.push_str("=\"");
            self.out.push_str(&esc(v));
            self.out.push('"');
        }
    }

    /// Open an element with attributes (namespace declarations included).
    pub fn open_with(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start_tag(name, attrs);
        self.out.push_str(">\n");
        self.stack.push(name.to_string());
    }

    pub fn open(&mut self, name: &str) {
        self.open_with(name, &[]);
    }

    pub fn close(&mut self) {
        if let Some(name) = self.stack.pop() {
            self.indent();
            self.out.push_str("</");
            self.out.push_str(&name);
            self.out.push_str(">\n");
        }
    }

    /// An empty element with attributes.
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.start_tag(name, attrs);
        self.out.push_str("/>\n");
    }

    /// `<name>text</name>`.
    pub fn text(&mut self, name: &str, text: &str) {
        self.start_tag(name, &[]);
        self.out.push('>');
        self.out.push_str(&esc(text));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    pub fn opt_text(&mut self, name: &str, text: Option<&str>) {
        if let Some(t) = text.filter(|t| !t.trim().is_empty()) {
            self.text(name, t);
        }
    }

    /// `<name V="…"/>` (basismelding dates, `TS`).
    pub fn v(&mut self, name: &str, v: &str) {
        self.empty(name, &[("V", v)]);
    }

    /// A basismelding `TS` element from a model date, when it is a valid date or date-time.
    pub fn opt_ts(&mut self, name: &str, v: Option<&str>) {
        if let Some(t) = v.and_then(ts) {
            self.v(name, &t);
        }
    }

    /// A date-time element: `TS` (`V` attribute) when `ts_attr`, else `xs:dateTime` text.
    pub fn opt_when(&mut self, name: &str, v: Option<&str>, ts_attr: bool) {
        if ts_attr {
            self.opt_ts(name, v);
        } else if let Some(t) = v.and_then(xs_datetime) {
            self.text(name, &t);
        }
    }

    /// A coded value. `cv` allows the `S` (code system) attribute; `CS` elements carry only `V`
    /// and `DN`.
    pub fn code(&mut self, name: &str, c: &Code, cv: bool) {
        let s = if cv {
            c.system.as_deref().and_then(oid)
        } else {
            None
        };
        let mut attrs: Vec<(&str, &str)> = Vec::with_capacity(3);
        if !c.code.trim().is_empty() {
            attrs.push(("V", c.code.trim()));
        }
        if let Some(s) = s.as_deref() {
            attrs.push(("S", s));
        }
        if let Some(dn) = c.display.as_deref() {
            attrs.push(("DN", dn));
        }
        if attrs.is_empty() {
            attrs.push(("DN", NOT_GIVEN));
        }
        self.empty(name, &attrs);
    }

    pub fn cs(&mut self, name: &str, c: Option<&Code>) {
        if let Some(c) = c {
            self.code(name, c, false);
        }
    }

    pub fn cv(&mut self, name: &str, c: Option<&Code>) {
        if let Some(c) = c {
            self.code(name, c, true);
        }
    }

    /// A required coded element: the value, or the element saying "not given".
    pub fn code_req(&mut self, name: &str, c: Option<&Code>, cv: bool) {
        match c {
            Some(c) => self.code(name, c, cv),
            None => self.empty(name, &[("DN", NOT_GIVEN)]),
        }
    }

    /// A `PQ` (value must be a number to be written).
    pub fn pq(&mut self, name: &str, q: Option<&Quantity>) {
        let Some(q) = q else { return };
        let mut attrs: Vec<(&str, &str)> = Vec::new();
        let v = q.value.trim();
        if v.parse::<f64>().is_ok_and(f64::is_finite) {
            attrs.push(("V", v));
        }
        if let Some(u) = q.unit.as_deref().filter(|u| !u.trim().is_empty()) {
            attrs.push(("U", u.trim()));
        }
        self.empty(name, &attrs);
    }

    /// Raw, already well-formed content (used only for base64 text, which needs no escaping).
    pub fn text_block(&mut self, name: &str, attrs: &[(&str, &str)], content: &str) {
        self.start_tag(name, attrs);
        self.out.push('>');
        self.out.push_str(&esc(content));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// `StreetAdr`, `PostalCode`, `City`, `County` (municipality), `Country` of an address, each
    /// name prefixed with `p` (the shapes agree on these; `Type` and telecoms differ).
    pub fn address_lines(&mut self, p: &str, a: &crate::model::Address) {
        self.opt_text(&format!("{p}StreetAdr"), a.street.as_deref());
        self.opt_text(&format!("{p}PostalCode"), a.postal_code.as_deref());
        self.opt_text(&format!("{p}City"), a.city.as_deref());
        if let Some(m) = &a.municipality {
            self.v(&format!("{p}County"), m);
        }
        if let Some(c) = &a.country {
            self.v(&format!("{p}Country"), c);
        }
    }

    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.close();
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_and_dates() {
        assert_eq!(
            oid("urn:oid:2.16.578.1.12.4.1.1.7170").as_deref(),
            Some("2.16.578.1.12.4.1.1.7170")
        );
        assert_eq!(
            oid("http://hl7.org/fhir/sid/icd-10").as_deref(),
            Some("2.16.578.1.12.4.1.1.7110")
        );
        assert_eq!(oid("http://example.org/x"), None);
        assert_eq!(ts("2017-01-19").as_deref(), Some("2017-01-19"));
        assert_eq!(
            ts("2017-01-19T10:00").as_deref(),
            Some("2017-01-19T10:00:00")
        );
        assert_eq!(ts("junk"), None);
        assert_eq!(
            xs_date("1969-11-13T00:00:00").as_deref(),
            Some("1969-11-13")
        );
    }

    #[test]
    fn required_code_without_value_says_not_given() {
        let mut x = Xml::default();
        x.code_req("Priority", None, false);
        x.code("TypeId", &Code::new("HER", Some("http://x"), None), true);
        let s = x.finish();
        assert!(s.contains("<Priority DN=\"Ikke oppgitt\"/>"));
        assert!(s.contains("<TypeId V=\"HER\"/>"));
    }
}
