//! The KITH schema set on disk: `catalog.xml`'s namespace map and the file-name index the entity
//! loader resolves `schemaLocation`s with. Pure Rust, no libxml2.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use quick_xml::events::Event;
use quick_xml::Reader;

use super::XsdError;

/// Folders (relative to the kith folder) whose `.xsd` files make up the schema set.
const SCHEMA_DIRS: &[&str] = &[
    "common",
    "msghead",
    "apprec",
    "henvisning",
    "epikrise",
    "dialogmelding",
    "plo",
];

/// Sub-folders never indexed: `msghead/variants/` holds a second `MsgHead-v1_2.xsd` (the one
/// duplicate file name), a vendor variant that must not shadow the official schema.
const SKIPPED_DIRS: &[&str] = &["msghead/variants"];

/// One namespace of the catalog and the schema file that defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamespaceEntry {
    pub namespace: String,
    /// Path relative to the kith folder, as written in the catalog (`common/kith.xsd`).
    pub rel_path: String,
}

impl NamespaceEntry {
    /// Last path segment: what the wrapper schema imports and the loader maps back.
    pub fn file_name(&self) -> &str {
        last_segment(&self.rel_path)
    }
}

/// The last segment of a URL or path (`/` or `\` separated), without query or fragment.
pub(crate) fn last_segment(s: &str) -> &str {
    let s = s.split(['?', '#']).next().unwrap_or(s);
    s.rsplit(['/', '\\']).next().unwrap_or(s)
}

/// Reads `catalog.xml`'s `<uri name=NAMESPACE uri=FILE>` entries. Entries whose name is itself a
/// schema URL (`http://www.kith.no/xmlstds/kith.xsd`) are schemaLocation aliases, not namespaces.
pub(crate) fn read_catalog(kith_dir: &Path) -> Result<Vec<NamespaceEntry>, XsdError> {
    let path = kith_dir.join("catalog.xml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| XsdError::Catalog(format!("cannot read {}: {e}", path.display())))?;
    let mut reader = Reader::from_str(&text);
    let mut out: Vec<NamespaceEntry> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Empty(e)) | Ok(Event::Start(e)) if e.local_name().as_ref() == b"uri" => {
                let mut name = None;
                let mut uri = None;
                for attr in e.attributes() {
                    let attr = attr.map_err(|err| {
                        XsdError::Catalog(format!("{}: bad attribute: {err}", path.display()))
                    })?;
                    let value = attr
                        .unescape_value()
                        .map_err(|err| {
                            XsdError::Catalog(format!(
                                "{}: bad attribute value: {err}",
                                path.display()
                            ))
                        })?
                        .into_owned();
                    match attr.key.as_ref() {
                        b"name" => name = Some(value),
                        b"uri" => uri = Some(value),
                        _ => {}
                    }
                }
                if let (Some(namespace), Some(rel_path)) = (name, uri) {
                    if namespace.ends_with(".xsd") {
                        continue;
                    }
                    if !out.iter().any(|n| n.namespace == namespace) {
                        out.push(NamespaceEntry {
                            namespace,
                            rel_path,
                        });
                    }
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(err) => {
                return Err(XsdError::Catalog(format!("{}: {err}", path.display())));
            }
        }
    }
    if out.is_empty() {
        return Err(XsdError::Catalog(format!(
            "{}: no namespace entries",
            path.display()
        )));
    }
    Ok(out)
}

/// Indexes every `.xsd` under [`SCHEMA_DIRS`] by file name. Two files with the same name are an
/// error: the loader resolves by last path segment, so names must be unique.
pub(crate) fn index_schema_files(kith_dir: &Path) -> Result<HashMap<String, PathBuf>, XsdError> {
    let mut index: HashMap<String, PathBuf> = HashMap::new();
    for dir in SCHEMA_DIRS {
        let root = kith_dir.join(dir);
        if !root.is_dir() {
            return Err(XsdError::MissingDir(root));
        }
        let mut stack = vec![root];
        while let Some(current) = stack.pop() {
            let entries = std::fs::read_dir(&current).map_err(|e| {
                XsdError::Catalog(format!("cannot list {}: {e}", current.display()))
            })?;
            for entry in entries {
                let entry = entry.map_err(|e| {
                    XsdError::Catalog(format!("cannot list {}: {e}", current.display()))
                })?;
                let path = entry.path();
                let rel = path
                    .strip_prefix(kith_dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                if path.is_dir() {
                    if !SKIPPED_DIRS.iter().any(|s| rel == *s) {
                        stack.push(path);
                    }
                    continue;
                }
                if path.extension().and_then(|e| e.to_str()) != Some("xsd") {
                    continue;
                }
                let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned)
                else {
                    continue;
                };
                if let Some(previous) = index.get(&name) {
                    return Err(XsdError::Catalog(format!(
                        "schema file name {name} is not unique: {} and {}",
                        previous.display(),
                        path.display()
                    )));
                }
                index.insert(name, path);
            }
        }
    }
    Ok(index)
}

/// An in-memory schema that imports every catalog namespace by bare file name; the entity loader
/// maps those names to the local files.
pub(crate) fn wrapper_schema(entries: &[NamespaceEntry]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">\n",
    );
    for e in entries {
        s.push_str("  <xs:import namespace=\"");
        s.push_str(&xml_attr_escape(&e.namespace));
        s.push_str("\" schemaLocation=\"");
        s.push_str(&xml_attr_escape(e.file_name()));
        s.push_str("\"/>\n");
    }
    s.push_str("</xs:schema>\n");
    s
}

fn xml_attr_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_segment_of_urls_and_paths() {
        assert_eq!(
            last_segment("http://www.kith.no/xmlstds/kith.xsd"),
            "kith.xsd"
        );
        assert_eq!(last_segment("../../felleskomponenter/kith.xsd"), "kith.xsd");
        assert_eq!(last_segment("kith.xsd"), "kith.xsd");
        assert_eq!(last_segment("C:\\x\\y.xsd"), "y.xsd");
        assert_eq!(last_segment("http://x/y.xsd?a=b#c"), "y.xsd");
        assert_eq!(last_segment("http://x/"), "");
    }

    #[test]
    fn wrapper_imports_by_bare_name() {
        let w = wrapper_schema(&[NamespaceEntry {
            namespace: "http://www.kith.no/xmlstds".into(),
            rel_path: "common/kith.xsd".into(),
        }]);
        assert!(w.contains(
            "<xs:import namespace=\"http://www.kith.no/xmlstds\" schemaLocation=\"kith.xsd\"/>"
        ));
    }
}
