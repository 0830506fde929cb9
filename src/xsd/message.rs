//! Turning libxml2's error text into a finding message: trimmed, namespaces shortened and every
//! literal instance value redacted. Pure Rust, no libxml2.
//!
//! libxml2 quotes instance values (`Element 'DateOfBirth': '1991-12-4' is not a valid value of the
//! atomic type 'xs:date'.`), and a value may be patient data. Two independent passes remove them:
//!
//! 1. every value actually present at the error location (the element's text, its attribute
//!    values) is replaced wherever it appears quoted, which also covers values containing quotes;
//! 2. every remaining quoted string is redacted *unless* the words before it say it is a name
//!    from the schema (`Element '…'`, `attribute '…'`, `type '…'`, `[facet '…']`, `pattern '…'`,
//!    an enumeration set `{'a', 'b'}`, …). Unknown contexts are redacted: over-redaction is safe.

/// What a redacted value becomes.
pub(crate) const REDACTED: &str = "'…'";

/// Words that, directly before a quoted string, mark it as a schema-side name or constant.
const KEEP_AFTER: &[&str] = &[
    "Element ",
    "element ",
    "attribute ",
    "Attribute ",
    "type ",
    "type is ",
    "definition ",
    "[facet ",
    "pattern ",
    "constraint ",
    "length of ",
    "allowed (",
    "declaration ",
    "keyref ",
    "identity-constraint ",
    "namespace ",
    "Entity ",
    "entity ",
    "prefix ",
    "group ",
    "model group ",
];

/// Cleans one libxml2 message. `instance_values` are the texts found at the error location.
pub(crate) fn clean(raw: &str, instance_values: &[String]) -> String {
    let mut msg = collapse_ws(raw);
    for value in instance_values {
        for variant in [value.as_str(), value.trim(), &collapse_ws(value)] {
            if variant.is_empty() {
                continue;
            }
            let quoted = format!("'{variant}'");
            if msg.contains(&quoted) {
                msg = msg.replace(&quoted, REDACTED);
            }
        }
    }
    let msg = redact_quoted(&msg);
    let msg = redact_bytes(&msg);
    shorten_namespaces(&msg)
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A closing quote is one followed by a boundary (so `'O'Brien'` is read as one string).
fn is_closing(chars: &[char], i: usize) -> bool {
    match chars.get(i + 1) {
        None => true,
        Some(c) => matches!(c, ':' | ',' | '.' | ' ' | ')' | '}' | ';' | ']' | '\n'),
    }
}

fn redact_quoted(msg: &str) -> String {
    let chars: Vec<char> = msg.chars().collect();
    let mut out = String::with_capacity(msg.len());
    let mut in_set = false; // inside an enumeration set `{'a', 'b'}` (schema constants)
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' && chars.get(i + 1) == Some(&'\'') {
            in_set = true;
        } else if c == '}' {
            in_set = false;
        }
        if c != '\'' {
            out.push(c);
            i += 1;
            continue;
        }
        // Find the closing quote.
        let mut j = i + 1;
        while j < chars.len() && !(chars[j] == '\'' && is_closing(&chars, j)) {
            j += 1;
        }
        if j >= chars.len() {
            // Unbalanced: redact the rest, it may be a value.
            out.push_str(REDACTED);
            break;
        }
        let inner: String = chars[i + 1..j].iter().collect();
        let keep = in_set
            || inner == "…"
            || inner.is_empty()
            || KEEP_AFTER.iter().any(|k| out.ends_with(k));
        if keep {
            out.push('\'');
            out.push_str(&inner);
            out.push('\'');
        } else {
            out.push_str(REDACTED);
        }
        i = j + 1;
    }
    out
}

/// Parser messages about encodings quote raw bytes of the input (`Bytes: 0xE6 0x72 0x20 0x4F`).
fn redact_bytes(msg: &str) -> String {
    match msg.find("Bytes:") {
        Some(pos) => format!("{}Bytes: …", &msg[..pos]),
        None => msg.to_string(),
    }
}

/// `{http://www.kith.no/xmlstds/msghead/2006-05-24}Sender` → `{msghead/2006-05-24}Sender`.
fn shorten_namespaces(msg: &str) -> String {
    const PREFIXES: &[&str] = &["http://www.kith.no/xmlstds/", "http://ehelse.no/xmlstds/"];
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(pos) = rest.find('{') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        match PREFIXES.iter().find(|p| after.starts_with(*p)) {
            Some(p)
                if after
                    .find('}')
                    .is_some_and(|end| !after[..end].contains(['\'', ' '])) =>
            {
                out.push('{');
                rest = &after[p.len()..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_atomic_type_value() {
        let m = clean(
            "Element '{http://www.kith.no/xmlstds/msghead/2006-05-24}DateOfBirth': '1991-12-4' is not a valid value of the atomic type 'xs:date'.\n",
            &[],
        );
        assert_eq!(
            m,
            "Element '{msghead/2006-05-24}DateOfBirth': '…' is not a valid value of the atomic type 'xs:date'."
        );
    }

    #[test]
    fn keeps_schema_constants_redacts_values() {
        let m = clean(
            "Element 'MIGversion': [facet 'enumeration'] The value 'v9' is not an element of the set {'v1.2 2006-05-24', 'x'}.",
            &[],
        );
        assert_eq!(
            m,
            "Element 'MIGversion': [facet 'enumeration'] The value '…' is not an element of the set {'v1.2 2006-05-24', 'x'}."
        );
        let m = clean(
            "Element 'Id', attribute 'V': [facet 'pattern'] The value '12345' is not accepted by the pattern '[0-9]{11}'.",
            &[],
        );
        assert_eq!(
            m,
            "Element 'Id', attribute 'V': [facet 'pattern'] The value '…' is not accepted by the pattern '[0-9]{11}'."
        );
        let m = clean(
            "Element 'A': The value 'abc' does not match the fixed value constraint 'v1.2'.",
            &[],
        );
        assert_eq!(
            m,
            "Element 'A': The value '…' does not match the fixed value constraint 'v1.2'."
        );
        let m = clean(
            "Element 'A': No match found for key-sequence ['123'] of keyref 'k'.",
            &[],
        );
        assert_eq!(
            m,
            "Element 'A': No match found for key-sequence ['…'] of keyref 'k'."
        );
    }

    #[test]
    fn redacts_values_with_quotes_and_known_instance_values() {
        let m = clean(
            "Element 'GivenName': 'O'Brien' is not a valid value of the atomic type 'T'.",
            &[],
        );
        assert!(!m.contains("Brien"), "{m}");
        let m = clean(
            "Element 'X': 'D'Ar, tagnan' is not a valid value of the atomic type 'T'.",
            &["D'Ar, tagnan".to_string()],
        );
        assert!(!m.contains("tagnan"), "{m}");
    }

    #[test]
    fn redacts_bytes_and_unbalanced_quotes() {
        assert_eq!(
            clean(
                "Input is not proper UTF-8, indicate encoding ! Bytes: 0xE6 0x72 0x20 0x4F",
                &[]
            ),
            "Input is not proper UTF-8, indicate encoding ! Bytes: …"
        );
        assert_eq!(clean("Element 'A': 'secret", &[]), "Element 'A': '…'");
    }
}
