//! The routing choice: which KAD unit a referral goes to, and why.
//!
//! What it does: finds the patient's municipality (the address's municipality number, else the
//! postcode looked up in the directory, else the referrer's municipality when the policy allows,
//! else the policy's default), the unit whose catchment includes it, and — when that unit has no
//! free bed — its configured alternative if that one has room. Every outcome carries a stable
//! code and a reason in Norwegian (for the referrer) and English (for logs and the dashboard).
//! What it must NOT do: I/O of its own (it asks only the [`Directory`] it is given, and the
//! capacity callback), store or send anything, or put patient data in reasons (municipality
//! numbers and unit names only; never names or identity numbers). A directory that cannot answer
//! is an error for the caller, not a route. No route (`unit: None`) means the referral needs a
//! person; a full unit with no free alternative is kept (`full: true`) so that the referrer is
//! told and the unit can decide.

use serde::{Deserialize, Serialize};

use crate::model::{Message, Organisation};
use crate::registry::{valid_municipality, Directory, KadUnit, RegistryError};

/// The municipality's unit has a free bed.
pub const ROUTE_CATCHMENT: &str = "route.catchment";
/// The municipality's unit is full; its alternative has room and takes the referral.
pub const ROUTE_FULL_ALTERNATIVE: &str = "route.full-alternative";
/// The municipality's unit is full and there is no alternative with room.
pub const ROUTE_FULL: &str = "route.full";
/// The patient's municipality could not be found.
pub const ROUTE_NO_MUNICIPALITY: &str = "route.no-municipality";
/// No unit serves the patient's municipality.
pub const ROUTE_NO_UNIT: &str = "route.no-unit";

/// Every routing code (a public contract: add, never rename).
pub const ROUTE_CODES: [&str; 5] = [
    ROUTE_CATCHMENT,
    ROUTE_FULL_ALTERNATIVE,
    ROUTE_FULL,
    ROUTE_NO_MUNICIPALITY,
    ROUTE_NO_UNIT,
];

/// A unit's occupancy as the caller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub beds: u32,
    /// Stays currently open at the unit.
    pub open_stays: u32,
    /// The unit's own latest report of free beds, when fresh; it wins over `beds - open_stays`.
    pub reported_free: Option<u32>,
}

impl Capacity {
    /// Free beds: the unit's report when there is one, else beds minus open stays (never below 0).
    pub fn free(&self) -> u32 {
        self.reported_free
            .unwrap_or_else(|| self.beds.saturating_sub(self.open_stays))
    }
}

/// How to find a municipality when the patient's address gives none (`[routing]` in the config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingPolicy {
    /// The municipality to assume when nothing else tells (4 digits); `None` = needs review.
    pub default_municipality: Option<String>,
    /// Use the referrer's municipality (the sender, looked up in the directory) when the patient's
    /// address tells nothing. Usually right for a GP; a legevakt serving several municipalities
    /// makes it a guess, so a region can turn it off.
    pub use_referrer_municipality: bool,
}

impl Default for RoutingPolicy {
    fn default() -> Self {
        RoutingPolicy {
            default_municipality: None,
            use_referrer_municipality: true,
        }
    }
}

/// Where the municipality came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MunicipalitySource {
    /// The municipality number in the patient's address.
    Address,
    /// The postcode of the patient's address, looked up in the directory.
    Postcode,
    /// The referrer's municipality in the directory.
    Referrer,
    /// The policy's default.
    Default,
}

impl MunicipalitySource {
    fn words(self) -> (&'static str, &'static str) {
        match self {
            MunicipalitySource::Address => ("fra pasientens adresse", "from the patient's address"),
            MunicipalitySource::Postcode => (
                "fra postnummeret i pasientens adresse",
                "from the postcode of the patient's address",
            ),
            MunicipalitySource::Referrer => ("henviserens kommune", "the referrer's municipality"),
            MunicipalitySource::Default => {
                ("standardkommune i oppsettet", "the configured default")
            }
        }
    }
}

/// The routing choice, recorded with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The unit to send to; `None` = no route (needs review).
    pub unit: Option<KadUnit>,
    pub municipality: Option<String>,
    pub municipality_source: Option<MunicipalitySource>,
    /// The chosen unit has no free bed (no alternative with room).
    pub full: bool,
    /// HER-id of the full unit the referral was diverted from.
    pub diverted_from: Option<String>,
    /// One of [`ROUTE_CODES`].
    pub code: &'static str,
    pub reason_en: String,
    pub reason_no: String,
}

/// Choose the unit for `msg`. `capacity` tells a unit's occupancy (the caller reads it from the
/// store and the units' reports). Errors only when the directory cannot answer.
pub async fn route(
    dir: &dyn Directory,
    msg: &Message,
    capacity: &(dyn Fn(&KadUnit) -> Capacity + Sync),
    policy: &RoutingPolicy,
) -> Result<Route, RegistryError> {
    let Some((municipality, source)) = municipality(dir, msg, policy).await? else {
        return Ok(Route {
            unit: None,
            municipality: None,
            municipality_source: None,
            full: false,
            diverted_from: None,
            code: ROUTE_NO_MUNICIPALITY,
            reason_en: "The patient's municipality is not known (no municipality or known \
                        postcode in the address, and no referrer municipality or default to use); \
                        the referral needs manual routing."
                .into(),
            reason_no: "Pasientens kommune er ukjent (adressen har verken kommunenummer eller \
                        kjent postnummer, og verken henviserens kommune eller en standardkommune \
                        kan brukes); henvisningen må rutes manuelt."
                .into(),
        });
    };
    let (from_no, from_en) = source.words();
    let Some(unit) = dir.unit_for_municipality(&municipality).await? else {
        return Ok(Route {
            unit: None,
            municipality: Some(municipality.clone()),
            municipality_source: Some(source),
            full: false,
            diverted_from: None,
            code: ROUTE_NO_UNIT,
            reason_en: format!(
                "No KAD unit serves municipality {municipality} ({from_en}); the referral needs manual routing."
            ),
            reason_no: format!(
                "Ingen KAD-enhet betjener kommune {municipality} ({from_no}); henvisningen må rutes manuelt."
            ),
        });
    };
    let route = |unit: KadUnit, full, diverted_from, code, reason_en, reason_no| Route {
        unit: Some(unit),
        municipality: Some(municipality.clone()),
        municipality_source: Some(source),
        full,
        diverted_from,
        code,
        reason_en,
        reason_no,
    };
    let name = unit.party.name.clone();
    let free = capacity(&unit).free();
    if free > 0 {
        let en = format!(
            "Municipality {municipality} ({from_en}) is served by {name}, which has {free} free bed(s)."
        );
        let no = format!(
            "Kommune {municipality} ({from_no}) betjenes av {name}, som har {free} ledig(e) seng(er)."
        );
        return Ok(route(unit, false, None, ROUTE_CATCHMENT, en, no));
    }
    // Full: one step to the configured alternative, never a chain.
    let alternative = match unit.alternative.as_deref() {
        Some(her) => dir.kad_unit(her).await?,
        None => None,
    };
    if let Some(alt) = alternative {
        let alt_free = capacity(&alt).free();
        if alt_free > 0 {
            let alt_name = alt.party.name.clone();
            let en = format!(
                "{name}, which serves municipality {municipality} ({from_en}), is full; \
                 the referral goes to its alternative {alt_name}, which has {alt_free} free bed(s)."
            );
            let no = format!(
                "{name}, som betjener kommune {municipality} ({from_no}), er full; \
                 henvisningen går til alternativet {alt_name}, som har {alt_free} ledig(e) seng(er)."
            );
            let from = Some(unit.party.her_id.clone());
            return Ok(route(alt, false, from, ROUTE_FULL_ALTERNATIVE, en, no));
        }
        let alt_name = &alt.party.name;
        let en = format!(
            "{name}, which serves municipality {municipality} ({from_en}), is full, and so is its \
             alternative {alt_name}; the unit must decide."
        );
        let no = format!(
            "{name}, som betjener kommune {municipality} ({from_no}), er full, og det er også \
             alternativet {alt_name}; enheten må avgjøre."
        );
        return Ok(route(unit, true, None, ROUTE_FULL, en, no));
    }
    let (en, no) = match unit.alternative.as_deref() {
        // Named in the directory's data but not found there now (the register changed).
        Some(her) => (
            format!(
                "{name}, which serves municipality {municipality} ({from_en}), is full, and its \
                 alternative (HER-id {her}) is not in the directory; the unit must decide."
            ),
            format!(
                "{name}, som betjener kommune {municipality} ({from_no}), er full, og alternativet \
                 (HER-id {her}) finnes ikke i adresseregisteret; enheten må avgjøre."
            ),
        ),
        None => (
            format!(
                "{name}, which serves municipality {municipality} ({from_en}), is full and has no \
                 alternative unit; the unit must decide."
            ),
            format!(
                "{name}, som betjener kommune {municipality} ({from_no}), er full og har ingen \
                 alternativ enhet; enheten må avgjøre."
            ),
        ),
    };
    Ok(route(unit, true, None, ROUTE_FULL, en, no))
}

/// The patient's municipality and where it came from.
async fn municipality(
    dir: &dyn Directory,
    msg: &Message,
    policy: &RoutingPolicy,
) -> Result<Option<(String, MunicipalitySource)>, RegistryError> {
    let address = msg.patient().and_then(|p| p.address.as_ref());
    if let Some(m) = address
        .and_then(|a| a.municipality.as_deref())
        .map(str::trim)
        .filter(|m| valid_municipality(m))
    {
        return Ok(Some((m.to_string(), MunicipalitySource::Address)));
    }
    if let Some(pc) = address
        .and_then(|a| a.postal_code.as_deref())
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if let Some(m) = dir.municipality_for_postcode(pc).await? {
            return Ok(Some((m, MunicipalitySource::Postcode)));
        }
    }
    if policy.use_referrer_municipality {
        for her in referrer_her_ids(msg) {
            if let Some(m) = dir.party(&her).await?.and_then(|p| p.municipality) {
                return Ok(Some((m, MunicipalitySource::Referrer)));
            }
        }
    }
    Ok(policy
        .default_municipality
        .as_deref()
        .map(str::trim)
        .filter(|m| valid_municipality(m))
        .map(|m| (m.to_string(), MunicipalitySource::Default)))
}

/// HER-ids that name the referrer, most specific first: the message sender's chain (person,
/// sub-unit, organisation), then the referral's requester's.
fn referrer_her_ids(msg: &Message) -> Vec<String> {
    fn chain(o: &Organisation, out: &mut Vec<String>) {
        let mut here = Vec::new();
        if let Some(h) = o.professional.as_ref().and_then(|p| p.her_id()) {
            here.push(h.trim().to_string());
        }
        if let Some(u) = o.unit.as_deref() {
            chain(u, &mut here);
        }
        if let Some(h) = o.her_id() {
            here.push(h.trim().to_string());
        }
        for h in here {
            if !h.is_empty() && !out.contains(&h) {
                out.push(h);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(s) = &msg.header.sender {
        chain(s, &mut out);
    }
    if let crate::model::Body::Referral(r) = &msg.body {
        if let Some(req) = &r.requester {
            chain(req, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_free_beds_win_over_the_count() {
        let c = |beds, open_stays, reported_free| Capacity {
            beds,
            open_stays,
            reported_free,
        };
        assert_eq!(c(10, 4, None).free(), 6);
        assert_eq!(c(10, 12, None).free(), 0);
        assert_eq!(c(10, 4, Some(0)).free(), 0);
        assert_eq!(c(10, 10, Some(2)).free(), 2);
    }

    #[test]
    fn the_policy_reads_from_toml_and_refuses_unknown_keys() {
        let p: RoutingPolicy = toml::from_str("default_municipality = \"0301\"").expect("policy");
        assert_eq!(p.default_municipality.as_deref(), Some("0301"));
        assert!(p.use_referrer_municipality);
        assert!(toml::from_str::<RoutingPolicy>("colour = 1").is_err());
    }

    #[test]
    fn referrer_chain_is_most_specific_first() {
        use crate::model::{Body, Format, Header, Professional, Referral};
        let mut h = Header::new(Format::Henvisning20, "HENVISNING");
        h.sender = Some(Organisation {
            idents: vec![crate::model::Ident::new("990001", "HER")],
            professional: Some(Professional {
                idents: vec![crate::model::Ident::new("990011", "HER")],
                ..Professional::default()
            }),
            ..Organisation::default()
        });
        let r = Referral {
            requester: Some(Organisation {
                idents: vec![crate::model::Ident::new("990001", "HER")],
                unit: Some(Box::new(Organisation {
                    idents: vec![crate::model::Ident::new("990020", "HER")],
                    ..Organisation::default()
                })),
                ..Organisation::default()
            }),
            ..Referral::default()
        };
        let msg = Message {
            header: h,
            body: Body::Referral(Box::new(r)),
        };
        assert_eq!(referrer_her_ids(&msg), ["990011", "990001", "990020"]);
    }
}
