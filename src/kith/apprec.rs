//! The AppRec (applikasjonskvittering) encoder, FACTS §5 and §7.
//!
//! One AppRec answers one business message for one of our receiving parties: `Sender` is that party
//! exactly as the original message addressed it (all identifiers), `Receiver` is the original sender
//! with all its identifiers, `OriginalMsgId` names the original. Version 1.0 or 1.1 as the national
//! rules call for ([`Format::apprec_version`]). Output is deterministic for given inputs (the id and
//! the time are parameters), and every AppRec written here validates against its XSD (tested).

use crate::model::{Code, Format, Organisation, Professional, ReceiptStatus};

use super::{ns, oid};

/// The role of the party that sends the AppRec (8112).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverRole {
    /// The primary receiver of the original.
    Primary,
    /// A copy receiver of the original.
    Copy,
}

/// Everything one AppRec says.
#[derive(Debug, Clone)]
pub struct AppRecSpec<'a> {
    pub version: Format,
    /// The AppRec's own id (a UUID).
    pub id: &'a str,
    /// xs:dateTime.
    pub gen_date: &'a str,
    /// Our party, as addressed in the original.
    pub from: &'a Organisation,
    pub from_role: ReceiverRole,
    /// The original sender.
    pub to: &'a Organisation,
    pub status: ReceiptStatus,
    pub errors: &'a [AppRecError],
    pub original_msg_type: &'a str,
    pub original_msg_type_text: Option<&'a str>,
    /// xs:dateTime of the original's GenDate (normalise first with [`normalise_datetime`]).
    pub original_issue_date: &'a str,
    pub original_msg_id: &'a str,
}

/// One `Error` element: a code from 8221, its text, and optional free extra text (`OT`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppRecError {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ot: Option<String>,
}

impl AppRecError {
    pub fn new(code: &str) -> Self {
        AppRecError {
            code: code.to_string(),
            ot: None,
        }
    }
    pub fn with_ot(code: &str, ot: impl Into<String>) -> Self {
        AppRecError {
            code: code.to_string(),
            ot: Some(ot.into()),
        }
    }
}

/// The Norwegian text of an 8221 code.
pub fn error_text(code: &str) -> &'static str {
    match code {
        "T01" => "Ikke XML / ikke 'well formed' / uleselig",
        "T02" => "XML validerer ikke",
        "T10" => "Støtter ikke meldingsformatet",
        "T99" => "Annen feil på format",
        "S01" => "Feil på signatur",
        "S02" => "Ugyldig sertifikat",
        "S03" => "Tilbaketrukket sertifikat",
        "S99" => "Annen feil på signatur eller sertifikat",
        "E10" => "Ugyldig meldingsidentifikator",
        "E20" => "Lege finnes ikke",
        "E21" => "Mottaker finnes ikke",
        "E30" => "Pasientens fødselsnummer mangler",
        "E31" => "Pasientens fødselsnummer er feil",
        "E32" => "Pasientens navn mangler",
        "E33" => "Pasientens etternavn mangler",
        "E34" => "Pasientens fornavn mangler",
        "E35" => "Pasienten finnes ikke i mottakersystemet",
        "E36" => "Pasientopplysninger er utilstrekkelige",
        "E53" => "Pasientens fødselsnummer eller D-nummer finnes ikke registrert i Folkeregisteret",
        "E54" => "Pasientens fødselsnummer er ikke registrert i mottagersystemet",
        _ => "Annen feil",
    }
}

/// Escape text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are dropped rather than producing invalid output.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}

/// Turn a GenDate as senders write it into a valid xs:dateTime: dates get `T00:00:00`, unpadded
/// parts are padded, 7-digit fractions are kept (xs:dateTime allows any number). Returns None when
/// nothing sensible can be made of it.
pub fn normalise_datetime(s: &str) -> Option<String> {
    let s = s.trim();
    let (date, rest) = match s.find('T') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y = parts.next()?;
    let m = parts.next()?;
    let d = parts.next()?;
    if parts.next().is_some() || y.len() != 4 || !y.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let m: u32 = m.parse().ok()?;
    let d: u32 = d.parse().ok()?;
    chrono::NaiveDate::from_ymd_opt(y.parse().ok()?, m, d)?;
    let time = match rest {
        None => "00:00:00".to_string(),
        Some(t) => {
            let (hms, zone) = split_zone(t);
            let mut it = hms.split(':');
            let h: u32 = it.next()?.parse().ok()?;
            let mi: u32 = it.next()?.parse().ok()?;
            let sec = it.next().unwrap_or("0");
            let (whole, frac) = match sec.find('.') {
                Some(i) => (&sec[..i], Some(&sec[i + 1..])),
                None => (sec, None),
            };
            let sw: u32 = whole.parse().ok()?;
            if h > 23 || mi > 59 || sw > 60 {
                return None;
            }
            let mut out = format!("{h:02}:{mi:02}:{sw:02}");
            if let Some(f) = frac.filter(|f| !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()))
            {
                out.push('.');
                out.push_str(f);
            }
            out.push_str(zone);
            out
        }
    };
    Some(format!("{y}-{m:02}-{d:02}T{time}"))
}

fn split_zone(t: &str) -> (&str, &str) {
    if let Some(stripped) = t.strip_suffix('Z') {
        return (stripped, "Z");
    }
    if let Some(i) = t.rfind(['+', '-']) {
        if i > 0 {
            return (&t[..i], &t[i..]);
        }
    }
    (t, "")
}

/// The display text of an identifier type (9051 / 8116) when kadgate knows it.
pub fn id_type_text(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "HER" => "HER-id",
        "ENH" => "Organisasjonsnummeret i Enhetsregisteret",
        "RSH" => "RESH-id",
        "HPR" => "HPR-nummer",
        "FNR" => "Fødselsnummer",
        "DNR" => "D-nummer",
        "HNR" => "H-nummer",
        "LIN" | "LOK" => "Lokal identifikator",
        "AVD" => "Avdelingsnummer",
        _ => return None,
    })
}

fn push_cs(out: &mut String, indent: &str, name: &str, v: &str, dn: Option<&str>) {
    out.push_str(indent);
    out.push('<');
    out.push_str(name);
    out.push_str(" V=\"");
    out.push_str(&esc(v));
    out.push('"');
    if let Some(dn) = dn {
        out.push_str(" DN=\"");
        out.push_str(&esc(dn));
        out.push('"');
    }
    out.push_str("/>\n");
}

fn push_text(out: &mut String, indent: &str, name: &str, text: &str) {
    out.push_str(indent);
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&esc(text));
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

/// Id + TypeId for the preferred identifier, AdditionalId for the rest (written by the caller in
/// the right place: AdditionalId comes after Dept in Inst).
fn split_idents(
    idents: &[crate::model::Ident],
) -> (Option<&crate::model::Ident>, Vec<&crate::model::Ident>) {
    let primary = idents
        .iter()
        .position(|i| i.is("HER"))
        .or(if idents.is_empty() { None } else { Some(0) });
    let mut rest = Vec::new();
    for (n, i) in idents.iter().enumerate() {
        if Some(n) != primary {
            rest.push(i);
        }
    }
    (primary.map(|p| &idents[p]), rest)
}

fn push_id_pair(out: &mut String, indent: &str, id: Option<&crate::model::Ident>) {
    if let Some(i) = id {
        push_text(out, indent, "Id", i.id.trim());
        let kind = i.kind.trim().to_ascii_uppercase();
        push_cs(out, indent, "TypeId", &kind, id_type_text(&kind));
    }
}

fn push_additional(out: &mut String, indent: &str, rest: &[&crate::model::Ident]) {
    for i in rest {
        out.push_str(indent);
        out.push_str("<AdditionalId>\n");
        let inner = format!("{indent}  ");
        push_text(out, &inner, "Id", i.id.trim());
        let kind = i.kind.trim().to_ascii_uppercase();
        push_cs(out, &inner, "Type", &kind, id_type_text(&kind));
        out.push_str(indent);
        out.push_str("</AdditionalId>\n");
    }
}

fn person_name(p: &Professional) -> Option<String> {
    if let Some(n) = p.full_name.as_deref().filter(|s| !s.trim().is_empty()) {
        return Some(n.trim().to_string());
    }
    let parts: Vec<&str> = [
        p.given_name.as_deref(),
        p.middle_name.as_deref(),
        p.family_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(str::trim)
    .filter(|s| !s.is_empty())
    .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn push_hcperson(out: &mut String, indent: &str, p: &Professional) {
    out.push_str(indent);
    out.push_str("<HCPerson>\n");
    let inner = format!("{indent}  ");
    if let Some(n) = person_name(p) {
        push_text(out, &inner, "Name", &n);
    }
    let (primary, rest) = split_idents(&p.idents);
    push_id_pair(out, &inner, primary);
    push_additional(out, &inner, &rest);
    out.push_str(indent);
    out.push_str("</HCPerson>\n");
}

fn push_dept(out: &mut String, indent: &str, u: &Organisation) {
    out.push_str(indent);
    out.push_str("<Dept>\n");
    let inner = format!("{indent}  ");
    if let Some(n) = u.name.as_deref().filter(|s| !s.trim().is_empty()) {
        push_text(out, &inner, "Name", n.trim());
    }
    let (primary, rest) = split_idents(&u.idents);
    push_id_pair(out, &inner, primary);
    push_additional(out, &inner, &rest);
    out.push_str(indent);
    out.push_str("</Dept>\n");
}

/// `HCP/Inst` for an organisation chain: Organisation → Inst, each nested unit → Dept, the person
/// (wherever on the chain) → HCPerson.
fn push_hcp(out: &mut String, org: &Organisation) {
    out.push_str("    <HCP>\n      <Inst>\n");
    let i = "        ";
    if let Some(n) = org.name.as_deref().filter(|s| !s.trim().is_empty()) {
        push_text(out, i, "Name", n.trim());
    }
    let (primary, rest) = split_idents(&org.idents);
    push_id_pair(out, i, primary);
    let mut persons: Vec<&Professional> = org.professional.iter().collect();
    let mut unit = org.unit.as_deref();
    while let Some(u) = unit {
        push_dept(out, i, u);
        persons.extend(u.professional.iter());
        unit = u.unit.as_deref();
    }
    push_additional(out, i, &rest);
    for p in persons {
        push_hcperson(out, i, p);
    }
    out.push_str("      </Inst>\n    </HCP>\n");
}

/// Write one AppRec. UTF-8, with an XML declaration.
pub fn encode(spec: &AppRecSpec<'_>) -> String {
    let (namespace, mig) = match spec.version {
        Format::AppRec11 => (ns::APPREC_11, "v1.1 2012-02-15"),
        _ => (ns::APPREC_10, "1.0 2004-11-21"),
    };
    let mut o = String::with_capacity(2048);
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    o.push_str(&format!("<AppRec xmlns=\"{namespace}\">\n"));
    push_cs(
        &mut o,
        "  ",
        "MsgType",
        "APPREC",
        Some("Applikasjonskvittering"),
    );
    push_text(&mut o, "  ", "MIGversion", mig);
    push_text(&mut o, "  ", "SoftwareName", "kadgate");
    push_text(&mut o, "  ", "SoftwareVersion", env!("CARGO_PKG_VERSION"));
    push_text(&mut o, "  ", "GenDate", spec.gen_date);
    push_text(&mut o, "  ", "Id", spec.id);
    o.push_str("  <Sender>\n");
    let (rv, rdn) = match spec.from_role {
        ReceiverRole::Primary => ("PRIM", "Primærmottaker"),
        ReceiverRole::Copy => ("COP", "Kopimottaker"),
    };
    push_cs(&mut o, "    ", "Role", rv, Some(rdn));
    push_hcp(&mut o, spec.from);
    o.push_str("  </Sender>\n  <Receiver>\n");
    push_cs(&mut o, "    ", "Role", "AVS", Some("Avsender"));
    push_hcp(&mut o, spec.to);
    o.push_str("  </Receiver>\n");
    push_cs(
        &mut o,
        "  ",
        "Status",
        spec.status.code(),
        Some(spec.status.text()),
    );
    for e in spec.errors {
        o.push_str(&format!(
            "  <Error V=\"{}\" S=\"{}\" DN=\"{}\"",
            esc(&e.code),
            oid::APPREC_ERROR,
            esc(error_text(&e.code))
        ));
        if let Some(ot) = &e.ot {
            o.push_str(&format!(" OT=\"{}\"", esc(ot)));
        }
        o.push_str("/>\n");
    }
    o.push_str("  <OriginalMsgId>\n");
    push_cs(
        &mut o,
        "    ",
        "MsgType",
        spec.original_msg_type,
        spec.original_msg_type_text,
    );
    push_text(&mut o, "    ", "IssueDate", spec.original_issue_date);
    push_text(&mut o, "    ", "Id", spec.original_msg_id);
    o.push_str("  </OriginalMsgId>\n</AppRec>\n");
    o
}

/// A code for a message type we could not read, for `OriginalMsgId/MsgType`.
pub fn unknown_type() -> Code {
    Code::new("UKJENT", None, Some("Ukjent meldingstype"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_normalised() {
        assert_eq!(
            normalise_datetime("2008-11-12").as_deref(),
            Some("2008-11-12T00:00:00")
        );
        assert_eq!(
            normalise_datetime("1991-12-4T9:5:1").as_deref(),
            Some("1991-12-04T09:05:01")
        );
        assert_eq!(
            normalise_datetime("2019-03-14T13:13:51.9130000+01:00").as_deref(),
            Some("2019-03-14T13:13:51.9130000+01:00")
        );
        assert_eq!(normalise_datetime("nonsense"), None);
        assert_eq!(normalise_datetime("2019-02-30"), None);
    }

    #[test]
    fn escapes_and_drops_control_characters() {
        assert_eq!(esc("a<b&\"c\u{1}"), "a&lt;b&amp;&quot;c");
    }
}
