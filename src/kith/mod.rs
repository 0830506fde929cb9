//! KITH / e-helse XML messages: which kind a document is, decoding into the canonical model,
//! encoding from it, header and patient semantics, and the AppRec encoder.
//!
//! Invariants: no I/O here. Decoders never reject: they read what is there into the model and leave
//! judgement to [`semantics`] and the check in [`crate::check`].

pub mod apprec;
pub mod decode;
pub mod detect;
pub mod encode;
pub mod semantics;

/// Namespaces kadgate knows (FACTS §1).
pub mod ns {
    pub const MSGHEAD: &str = "http://www.kith.no/xmlstds/msghead/2006-05-24";
    pub const APPREC_10: &str = "http://www.kith.no/xmlstds/apprec/2004-11-21";
    pub const APPREC_11: &str = "http://www.kith.no/xmlstds/apprec/2012-02-15";
    pub const HENVISNING_10: &str = "http://www.kith.no/xmlstds/henvisning/2005-07-08";
    pub const HENVISNING_11: &str = "http://www.kith.no/xmlstds/henvisning/2012-02-15";
    pub const HENVISNING_20: &str = "http://ehelse.no/xmlstds/henvisning/2017-11-30";
    pub const EPIKRISE_10: &str = "http://www.kith.no/xmlstds/epikrise";
    pub const EPIKRISE_11: &str = "http://www.kith.no/xmlstds/epikrise/2006-09-23";
    pub const EPIKRISE_12: &str = "http://www.kith.no/xmlstds/epikrise/2012-02-15";
    pub const DIALOG_10: &str = "http://www.kith.no/xmlstds/dialog/2006-10-11";
    pub const DIALOG_11: &str = "http://www.kith.no/xmlstds/dialog/2013-01-23";
    pub const BASE64: &str = "http://www.kith.no/xmlstds/base64container";
    pub const KITH: &str = "http://www.kith.no/xmlstds";
}

/// Volven code-system OIDs used when writing messages.
pub mod oid {
    pub const PREFIX: &str = "2.16.578.1.12.4.1.1.";
    pub const MSG_TYPE: &str = "2.16.578.1.12.4.1.1.8279";
    pub const APPREC_STATUS: &str = "2.16.578.1.12.4.1.1.8258";
    pub const APPREC_ERROR: &str = "2.16.578.1.12.4.1.1.8221";
    pub const ORG_ID_TYPE: &str = "2.16.578.1.12.4.1.1.9051";
    pub const PERSON_ID_TYPE: &str = "2.16.578.1.12.4.1.1.8116";
}
