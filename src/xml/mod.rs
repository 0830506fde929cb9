//! The hardened XML reader: bytes in, a small element tree out, or a finding saying why not.
//!
//! Everything kadgate reads of a KITH message goes through here (libxml2 sees the bytes only for XSD
//! validation). Defences, all checked before any tree is handed on:
//! - a size cap, an element-depth cap and an element-count cap;
//! - any `<!DOCTYPE` is refused outright (never parsed, never expanded, so no external entities and no
//!   entity-expansion bombs);
//! - only the five predefined entities and character references are accepted;
//! - the declared encoding must be UTF-8 or ISO-8859-1 (Latin-1; `windows-1252` is read as its
//!   superset); anything else is refused, and UTF-8 must really be UTF-8.
//!
//! On failure the error carries the part of the tree read so far, so the caller can still try to find
//! out who sent the message (a T01 AppRec needs a sender).
//!
//! Invariant: no I/O, no global state; never panics on any input.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::finding::{codes, Finding};

/// Caps applied while reading. The defaults fit every real KITH message with room to spare.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 20 * 1024 * 1024,
            max_depth: 64,
            max_elements: 200_000,
        }
    }
}

/// One attribute, namespace resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub ns: Option<String>,
    pub name: String,
    pub value: String,
}

/// One element with its namespace-resolved name, attributes, direct text and child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub ns: Option<String>,
    pub name: String,
    pub attrs: Vec<Attr>,
    /// Concatenated text directly inside this element (not its children's).
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// Attribute value by local name (attributes without a namespace, as KITH uses them).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.name == name)
            .map(|a| a.value.as_str())
    }
    /// First child element with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    /// All child elements with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    /// Follow a path of local names (`"MsgInfo/Sender/Organisation"`), first match at each step.
    pub fn at(&self, path: &str) -> Option<&Element> {
        let mut cur = self;
        for step in path.split('/').filter(|s| !s.is_empty()) {
            cur = cur.child(step)?;
        }
        Some(cur)
    }
    /// Trimmed text, `None` when empty.
    pub fn text_opt(&self) -> Option<&str> {
        let t = self.text.trim();
        (!t.is_empty()).then_some(t)
    }
    /// Trimmed text of the element at `path`.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        self.at(path).and_then(Element::text_opt)
    }
    /// The `V` attribute of the element at `path` (KITH coded values).
    pub fn v_at(&self, path: &str) -> Option<&str> {
        self.at(path)
            .and_then(|e| e.attr("V"))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
    /// Depth-first search for the first descendant (or self) with this local name.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
    /// Every descendant (and self) with this local name, document order.
    pub fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        if self.name == name {
            out.push(self);
        }
        for c in &self.children {
            c.find_all(name, out);
        }
    }
}

/// The declared (and used) character encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Latin1,
    Windows1252,
}

/// A successfully read document.
#[derive(Debug, Clone)]
pub struct Document {
    pub root: Element,
    pub encoding: Encoding,
}

/// Why a document could not be read, and what was read before that.
#[derive(Debug, Clone)]
pub struct ScanError {
    pub finding: Box<Finding>,
    /// The root element as far as it was read (children closed or not), if any.
    pub partial: Option<Box<Element>>,
}

impl ScanError {
    fn new(code: &str, path: &str, message: impl Into<String>) -> Self {
        ScanError {
            finding: Box::new(Finding::error(code, path, message)),
            partial: None,
        }
    }
}

/// Find the `encoding` pseudo-attribute of the XML declaration, if any.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let b = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(bytes);
    if !b.starts_with(b"<?xml") {
        return None;
    }
    let end = b.iter().position(|&c| c == b'>')?;
    let decl = std::str::from_utf8(&b[..end]).ok()?;
    let i = decl.find("encoding")?;
    let rest = decl[i + 8..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next()?;
    if quote != '"' && quote != '\'' {
        return None;
    }
    let rest = &rest[1..];
    let close = rest.find(quote)?;
    Some(rest[..close].to_string())
}

/// Decode the bytes to text by the declared encoding.
pub fn decode_text(bytes: &[u8]) -> Result<(String, Encoding), ScanError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(ScanError::new(
            codes::XML_ENCODING,
            "/",
            "UTF-16 is not accepted; use UTF-8 or ISO-8859-1",
        ));
    }
    let enc = declared_encoding(bytes).unwrap_or_else(|| "UTF-8".to_string());
    let norm = enc.to_ascii_lowercase().replace('_', "-");
    match norm.as_str() {
        "utf-8" | "utf8" => {
            let b = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(bytes);
            match std::str::from_utf8(b) {
                Ok(s) => Ok((s.to_string(), Encoding::Utf8)),
                Err(e) => Err(ScanError::new(
                    codes::XML_NOT_WELL_FORMED,
                    "/",
                    format!(
                        "declared UTF-8 but byte {} is not valid UTF-8",
                        e.valid_up_to()
                    ),
                )),
            }
        }
        "iso-8859-1" | "latin1" | "latin-1" | "iso8859-1" | "l1" => Ok((
            bytes.iter().map(|&c| char::from(c)).collect(),
            Encoding::Latin1,
        )),
        "windows-1252" | "cp1252" => {
            let (s, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
            Ok((s.into_owned(), Encoding::Windows1252))
        }
        _ => Err(ScanError::new(
            codes::XML_ENCODING,
            "/",
            format!("declared encoding {enc:?} is not accepted; use UTF-8 or ISO-8859-1"),
        )),
    }
}

fn line_of(text: &str, pos: u64) -> usize {
    let pos = (pos as usize).min(text.len());
    text.as_bytes()[..pos]
        .iter()
        .filter(|&&c| c == b'\n')
        .count()
        + 1
}

fn path_of(stack: &[Element]) -> String {
    let mut p = String::new();
    for e in stack {
        p.push('/');
        p.push_str(&e.name);
    }
    if p.is_empty() {
        p.push('/');
    }
    p
}

/// Close every open element into its parent and return the root: the partial tree.
fn fold_partial(mut stack: Vec<Element>, root: Option<Element>) -> Option<Element> {
    if let Some(r) = root {
        return Some(r);
    }
    let mut child = stack.pop()?;
    while let Some(mut parent) = stack.pop() {
        parent.children.push(child);
        child = parent;
    }
    Some(child)
}

/// Read a document under the given limits.
pub fn scan(bytes: &[u8], limits: &Limits) -> Result<Document, ScanError> {
    scan_inner(bytes, limits, false)
}

/// Best-effort tree of a document that is *not* well-formed, for finding out who sent it: a
/// mismatched end tag closes the elements opened since its start tag and reading goes on. Never
/// used to process a message — only to address the negative AppRec (T01).
pub fn recover_tree(bytes: &[u8], limits: &Limits) -> Option<Element> {
    match scan_inner(bytes, limits, true) {
        Ok(d) => Some(d.root),
        Err(e) => e.partial.map(|b| *b),
    }
}

fn scan_inner(bytes: &[u8], limits: &Limits, recover: bool) -> Result<Document, ScanError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ScanError::new(
            codes::XML_EMPTY,
            "/",
            "the message is empty",
        ));
    }
    if bytes.len() > limits.max_bytes {
        return Err(ScanError::new(
            codes::XML_TOO_LARGE,
            "/",
            format!(
                "the message is {} bytes; the limit is {}",
                bytes.len(),
                limits.max_bytes
            ),
        ));
    }
    let (text, encoding) = decode_text(bytes)?;
    let mut reader = NsReader::from_str(&text);
    reader.config_mut().check_end_names = !recover;
    reader.config_mut().expand_empty_elements = false;

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;

    macro_rules! fail {
        ($code:expr, $msg:expr) => {{
            let path = path_of(&stack);
            let partial = fold_partial(stack, root).map(Box::new);
            return Err(ScanError {
                finding: Box::new(Finding::error($code, path, $msg)),
                partial,
            });
        }};
    }

    loop {
        let pos = reader.buffer_position();
        let ev = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                let line = line_of(&text, reader.buffer_position().max(pos));
                let msg = sanitize_quick_xml_error(&e.to_string());
                fail!(codes::XML_NOT_WELL_FORMED, format!("line {line}: {msg}"))
            }
        };
        match ev {
            Event::Start(ref s) | Event::Empty(ref s) => {
                let empty = matches!(ev, Event::Empty(_));
                if root.is_some() {
                    fail!(
                        codes::XML_NOT_WELL_FORMED,
                        format!(
                            "line {}: content after the root element",
                            line_of(&text, pos)
                        )
                    )
                }
                count += 1;
                if count > limits.max_elements {
                    fail!(
                        codes::XML_TOO_MANY_ELEMENTS,
                        format!("more than {} elements", limits.max_elements)
                    )
                }
                if stack.len() + 1 > limits.max_depth {
                    fail!(
                        codes::XML_TOO_DEEP,
                        format!("elements nested deeper than {}", limits.max_depth)
                    )
                }
                let el = match start_element(&reader, s) {
                    Ok(el) => el,
                    Err((code, msg)) => fail!(code, format!("line {}: {msg}", line_of(&text, pos))),
                };
                if empty {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => root = Some(el),
                    }
                } else {
                    stack.push(el);
                }
            }
            Event::End(ref e) if recover => {
                let (_, local) = reader.resolve_element(e.name());
                let name = String::from_utf8_lossy(local.as_ref()).into_owned();
                if stack.iter().any(|el| el.name == name) {
                    while let Some(el) = stack.pop() {
                        let done = el.name == name;
                        match stack.last_mut() {
                            Some(parent) => parent.children.push(el),
                            None => root = Some(el),
                        }
                        if done {
                            break;
                        }
                    }
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    fail!(
                        codes::XML_NOT_WELL_FORMED,
                        format!("line {}: end tag without start tag", line_of(&text, pos))
                    )
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let raw = t.into_inner();
                match stack.last_mut() {
                    Some(cur) => match unescape(&raw) {
                        Ok(s) => cur.text.push_str(&s),
                        Err(msg) => fail!(
                            codes::XML_ENTITY,
                            format!("line {}: {msg}", line_of(&text, pos))
                        ),
                    },
                    None => {
                        if !raw.iter().all(u8::is_ascii_whitespace) {
                            fail!(
                                codes::XML_NOT_WELL_FORMED,
                                format!(
                                    "line {}: text outside the root element",
                                    line_of(&text, pos)
                                )
                            )
                        }
                    }
                }
            }
            Event::CData(c) => match stack.last_mut() {
                Some(cur) => cur.text.push_str(&String::from_utf8_lossy(&c.into_inner())),
                None => fail!(codes::XML_NOT_WELL_FORMED, "CDATA outside the root element"),
            },
            Event::DocType(_) => {
                fail!(
                    codes::XML_DOCTYPE,
                    format!(
                        "line {}: a DOCTYPE declaration is not accepted",
                        line_of(&text, pos)
                    )
                )
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        fail!(
            codes::XML_NOT_WELL_FORMED,
            "the document ends inside an element"
        )
    }
    match root {
        Some(root) => Ok(Document { root, encoding }),
        None => Err(ScanError::new(
            codes::XML_NOT_WELL_FORMED,
            "/",
            "no root element",
        )),
    }
}

/// quick-xml's messages may quote document content (e.g. a mismatched end tag name is fine, but an
/// attribute value is not); keep only the part before any quoted content.
fn sanitize_quick_xml_error(msg: &str) -> String {
    let m = msg.replace('\n', " ");
    if m.len() > 200 {
        format!(
            "{}…",
            &m[..m.char_indices().nth(200).map(|(i, _)| i).unwrap_or(m.len())]
        )
    } else {
        m
    }
}

fn start_element(
    reader: &NsReader<&[u8]>,
    s: &BytesStart<'_>,
) -> Result<Element, (&'static str, String)> {
    let (res, local) = reader.resolve_element(s.name());
    let ns = match res {
        ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        ResolveResult::Unbound => None,
        ResolveResult::Unknown(p) => {
            return Err((
                codes::XML_NOT_WELL_FORMED,
                format!(
                    "undeclared namespace prefix {:?}",
                    String::from_utf8_lossy(&p)
                ),
            ))
        }
    };
    let name = String::from_utf8_lossy(local.as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in s.attributes().with_checks(true) {
        let a = a.map_err(|e| {
            (
                codes::XML_NOT_WELL_FORMED,
                format!(
                    "bad attribute on <{name}>: {}",
                    sanitize_quick_xml_error(&e.to_string())
                ),
            )
        })?;
        let key = a.key;
        if key.as_ref() == b"xmlns" || key.as_ref().starts_with(b"xmlns:") {
            continue;
        }
        let (res, local) = reader.resolve_attribute(key);
        let ans = match res {
            ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(p) => {
                return Err((
                    codes::XML_NOT_WELL_FORMED,
                    format!(
                        "undeclared namespace prefix {:?}",
                        String::from_utf8_lossy(&p)
                    ),
                ))
            }
        };
        let value = unescape(&a.value).map_err(|m| (codes::XML_ENTITY, m))?;
        attrs.push(Attr {
            ns: ans,
            name: String::from_utf8_lossy(local.as_ref()).into_owned(),
            value,
        });
    }
    Ok(Element {
        ns,
        name,
        attrs,
        text: String::new(),
        children: Vec::new(),
    })
}

/// Resolve the five predefined entities and character references; refuse everything else.
fn unescape(raw: &[u8]) -> Result<String, String> {
    let s = String::from_utf8_lossy(raw);
    if !s.contains('&') {
        return Ok(s.into_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest: &str = &s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(end) = after.find(';') else {
            return Err("an '&' that does not start an entity or character reference".into());
        };
        let name = &after[..end];
        match name {
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "amp" => out.push('&'),
            "apos" => out.push('\''),
            "quot" => out.push('"'),
            _ if name.starts_with('#') => {
                let n = if let Some(h) = name.strip_prefix("#x") {
                    u32::from_str_radix(h, 16).ok()
                } else {
                    name[1..].parse::<u32>().ok()
                };
                match n.and_then(char::from_u32) {
                    Some(c) if c != '\0' => out.push(c),
                    _ => return Err("a character reference to an invalid character".into()),
                }
            }
            _ => return Err("an entity reference other than the five predefined ones".into()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_code(x: &str) -> String {
        scan(x.as_bytes(), &Limits::default())
            .unwrap_err()
            .finding
            .code
    }

    #[test]
    fn reads_namespaces_text_and_attributes() {
        let d = scan(
            br#"<?xml version="1.0"?><a:R xmlns:a="urn:x"><a:B V="1">t &amp; &#65;</a:B></a:R>"#,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(d.root.ns.as_deref(), Some("urn:x"));
        assert_eq!(d.root.at("B").unwrap().attr("V"), Some("1"));
        assert_eq!(d.root.text_at("B"), Some("t & A"));
    }

    #[test]
    fn refuses_hostile_constructs() {
        assert_eq!(
            err_code(r#"<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#),
            codes::XML_DOCTYPE
        );
        assert_eq!(err_code("<r>&x;</r>"), codes::XML_ENTITY);
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(err_code(&deep), codes::XML_TOO_DEEP);
        assert_eq!(err_code("<a><b></a>"), codes::XML_NOT_WELL_FORMED);
        assert_eq!(err_code("<a/><b/>"), codes::XML_NOT_WELL_FORMED);
        assert_eq!(err_code("   "), codes::XML_EMPTY);
        assert_eq!(
            err_code(r#"<?xml version="1.0" encoding="UTF-16"?><a/>"#),
            codes::XML_ENCODING
        );
    }

    #[test]
    fn latin1_is_decoded() {
        let mut b = br#"<?xml version="1.0" encoding="ISO-8859-1"?><a>"#.to_vec();
        b.push(0xF8); // ø
        b.extend_from_slice(b"</a>");
        assert_eq!(scan(&b, &Limits::default()).unwrap().root.text, "ø");
    }

    #[test]
    fn recovery_reads_past_a_mismatched_end_tag() {
        let t = recover_tree(
            b"<R><S><O><I>1</I></S><T><I>2</I></T></R>",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(t.text_at("S/O/I"), Some("1"));
        assert_eq!(t.text_at("T/I"), Some("2"));
    }

    #[test]
    fn partial_tree_survives_errors() {
        let e = scan(b"<R><S><I>1</I></S><T></R>", &Limits::default()).unwrap_err();
        let p = e.partial.unwrap();
        assert_eq!(p.text_at("S/I"), Some("1"));
    }
}
