//! Which kind of KITH / e-helse message a document is (FACTS §1).
//!
//! Detection looks only at namespaces and root element names, never at content: a MsgHead is a
//! MsgHead whatever it carries; the carried business document's format is reported separately in
//! [`Detected::inner`]. NAV's `EI_fellesformat` envelope is looked through: its first child in a
//! KITH / e-helse namespace is the effective message root.
//!
//! Invariant: no I/O, never panics.

use super::ns;
use crate::model::Format;
use crate::xml::Element;

/// A recognised message.
#[derive(Debug, Clone, Copy)]
pub struct Detected<'a> {
    /// The effective message root: the document root, or for NAV's `EI_fellesformat` its first child
    /// whose namespace starts with http://www.kith.no/xmlstds or http://ehelse.no/xmlstds.
    pub root: &'a Element,
    /// `MsgHead12` for MsgHead (the inner document's format is in `inner`).
    pub format: Format,
    /// For MsgHead: the embedded business document's format (Dialogmelding10/11, Plo15/16/20,
    /// Henvisning20), `None` if there is none or it is unknown.
    pub inner: Option<Format>,
    /// The message came wrapped in NAV's `EI_fellesformat`.
    pub fellesformat: bool,
}

/// The outcome of [`detect`].
#[derive(Debug, Clone)]
pub enum Detection<'a> {
    Known(Detected<'a>),
    /// Not a message kadgate knows: the effective root's namespace and local name.
    Unknown {
        ns: Option<String>,
        name: String,
        fellesformat: bool,
    },
    /// An `EI_fellesformat` envelope without any KITH / e-helse message inside.
    EmptyEnvelope,
}

const KITH_PREFIX: &str = "http://www.kith.no/xmlstds";
const EHELSE_PREFIX: &str = "http://ehelse.no/xmlstds";

/// Is this namespace one of the KITH / e-helse message namespaces?
pub fn is_kith_ns(ns: Option<&str>) -> bool {
    ns.is_some_and(|n| n.starts_with(KITH_PREFIX) || n.starts_with(EHELSE_PREFIX))
}

/// The root to work on: the element itself, or the first KITH child of an `EI_fellesformat`.
/// The flag says whether an envelope was looked through; `None` for an envelope without a KITH child.
pub fn effective_root(root: &Element) -> Option<(&Element, bool)> {
    if root.name == "EI_fellesformat" {
        return root
            .children
            .iter()
            .find(|c| is_kith_ns(c.ns.as_deref()))
            .map(|c| (c, true));
    }
    Some((root, false))
}

/// The format of a standalone root element (MsgHead, AppRec, basismelding `Message`).
pub fn root_format(root: &Element) -> Option<Format> {
    let ns = root.ns.as_deref()?;
    Some(match (ns, root.name.as_str()) {
        (ns::MSGHEAD, "MsgHead") => Format::MsgHead12,
        (ns::APPREC_10, "AppRec") => Format::AppRec10,
        (ns::APPREC_11, "AppRec") => Format::AppRec11,
        (ns::HENVISNING_10, "Message") => Format::Henvisning10,
        (ns::HENVISNING_11, "Message") => Format::Henvisning11,
        (ns::EPIKRISE_10, "Message") => Format::Epikrise10,
        (ns::EPIKRISE_11, "Message") => Format::Epikrise11,
        (ns::EPIKRISE_12, "Message") => Format::Epikrise12,
        _ => return None,
    })
}

/// The format of a document embedded in MsgHead, by its namespace.
pub fn inner_format_of_ns(ns: &str) -> Option<Format> {
    let po15 = ns.starts_with("http://www.kith.no/xmlstds/po/") && ns.ends_with("/2009-06-30");
    let po16 = ns.starts_with("http://www.kith.no/xmlstds/po/") && ns.ends_with("/2012-04-01");
    Some(match ns {
        ns::DIALOG_10 => Format::Dialogmelding10,
        ns::DIALOG_11 => Format::Dialogmelding11,
        ns::HENVISNING_20 => Format::Henvisning20,
        _ if po15 => Format::Plo15,
        _ if po16 => Format::Plo16,
        _ if ns.starts_with("http://ehelse.no/xmlstds/po/") => Format::Plo20,
        _ => return None,
    })
}

/// The business document inside a MsgHead: the element child of `RefDoc/Content` of the first
/// `Document` that has one (a Base64Container counts; it is then not a known inner format).
pub fn content_root(msghead: &Element) -> Option<&Element> {
    msghead
        .children_named("Document")
        .filter_map(|d| d.at("RefDoc/Content"))
        .find_map(|c| c.children.first())
}

/// Decide which kind of message `root` (a whole document's root element) is.
pub fn detect(root: &Element) -> Detection<'_> {
    let Some((eff, fellesformat)) = effective_root(root) else {
        return Detection::EmptyEnvelope;
    };
    match root_format(eff) {
        Some(format) => {
            let inner = if format == Format::MsgHead12 {
                content_root(eff)
                    .and_then(|c| c.ns.as_deref())
                    .and_then(inner_format_of_ns)
            } else {
                None
            };
            Detection::Known(Detected {
                root: eff,
                format,
                inner,
                fellesformat,
            })
        }
        None => Detection::Unknown {
            ns: eff.ns.clone(),
            name: eff.name.clone(),
            fellesformat,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{scan, Limits};

    fn det(x: &str) -> (Option<Format>, Option<Format>, bool) {
        let d = scan(x.as_bytes(), &Limits::default()).unwrap();
        match detect(&d.root) {
            Detection::Known(k) => (Some(k.format), k.inner, k.fellesformat),
            Detection::Unknown { fellesformat, .. } => (None, None, fellesformat),
            Detection::EmptyEnvelope => (None, None, true),
        }
    }

    #[test]
    fn detects_by_namespace() {
        assert_eq!(
            det(r#"<AppRec xmlns="http://www.kith.no/xmlstds/apprec/2012-02-15"/>"#).0,
            Some(Format::AppRec11)
        );
        assert_eq!(
            det(r#"<Message xmlns="http://www.kith.no/xmlstds/henvisning/2005-07-08"/>"#).0,
            Some(Format::Henvisning10)
        );
        assert_eq!(det(r#"<Message xmlns="urn:other"/>"#).0, None);
        let mh = r#"<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"><Document><RefDoc><Content>
            <X xmlns="http://www.kith.no/xmlstds/po/Pasientlogistikk/2012-04-01"/></Content></RefDoc></Document></MsgHead>"#;
        assert_eq!(
            det(mh),
            (Some(Format::MsgHead12), Some(Format::Plo16), false)
        );
        let ff = format!(
            r#"<EI_fellesformat xmlns="http://www.nav.no/xml/eiff/2/"><A/>{mh}</EI_fellesformat>"#
        );
        assert_eq!(
            det(&ff),
            (Some(Format::MsgHead12), Some(Format::Plo16), true)
        );
        let d = scan(
            br#"<EI_fellesformat xmlns="http://www.nav.no/xml/eiff/2/"><A/></EI_fellesformat>"#,
            &Limits::default(),
        )
        .unwrap();
        assert!(matches!(detect(&d.root), Detection::EmptyEnvelope));
    }
}
