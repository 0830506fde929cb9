//! Forwarding a received FHIR referral to a FHIR unit by readdressing it: every clinical resource
//! stays as the sender wrote it, the result is valid R4 (with the KAD rules), decodes to the same
//! referral addressed to the new unit, and a receiver with several levels is left to the encoder.

use kadgate::fhir::forward::{readdress, Readdress};
use kadgate::model::{Ident, Organisation};
use serde_json::Value;

fn org(her: &str, enh: &str, name: &str) -> Organisation {
    Organisation {
        name: Some(name.into()),
        idents: vec![
            Ident {
                id: her.into(),
                kind: "HER".into(),
                system: None,
            },
            Ident {
                id: enh.into(),
                kind: "ENH".into(),
                system: None,
            },
        ],
        ..Organisation::default()
    }
}

fn input() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/load/fhir-referral-10k.json"
    ))
    .unwrap()
}

#[test]
fn a_forwarded_referral_keeps_its_content_and_gets_the_new_address() {
    let raw = input();
    let unit = org("990004", "990001022", "Åsdal KAD");
    let out = readdress(
        &raw,
        &Readdress {
            msg_id: "7d0c2a3e-5b1f-4c2e-9a61-0f3b8e2d4c10",
            bundle_id: "0b9e7c55-2d41-4f3a-8c7e-6a5d4c3b2a19",
            now: "2026-11-25T12:00:00Z",
            receiver: &unit,
        },
    )
    .expect("forwardable");
    let before: Value = serde_json::from_slice(&raw).unwrap();
    let after: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(after["id"], "0b9e7c55-2d41-4f3a-8c7e-6a5d4c3b2a19");
    let header = &after["entry"][0]["resource"];
    assert_eq!(header["id"], "7d0c2a3e-5b1f-4c2e-9a61-0f3b8e2d4c10");
    assert_eq!(
        header["destination"][0]["endpoint"],
        "urn:oid:2.16.578.1.12.4.1.2:990004"
    );
    let receiver_ref = header["destination"][0]["receiver"]["reference"]
        .as_str()
        .unwrap();
    let (b, a) = (
        before["entry"].as_array().unwrap(),
        after["entry"].as_array().unwrap(),
    );
    assert_eq!(a.len(), b.len());
    let mut changed = 0;
    for (x, y) in b.iter().zip(a).skip(1) {
        if y["fullUrl"] == receiver_ref {
            assert_eq!(y["resource"]["name"], "Åsdal KAD");
            let ids = y["resource"]["identifier"].as_array().unwrap();
            assert!(ids.iter().any(|i| i["value"] == "990004"));
            assert!(ids.iter().any(|i| i["value"] == "990001022"));
            changed += 1;
        } else {
            assert_eq!(x, y, "every other resource is forwarded as received");
        }
    }
    assert_eq!(changed, 1);
    // Valid R4 with the KAD rules, and it still reads as the same referral, now to the new unit.
    let findings = kadgate::fhir::validate::validate_with(
        &after,
        &kadgate::fhir::validate::Options::default(),
    );
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == kadgate::finding::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let rules = kadgate::check::Rules::from_config(&kadgate::config::Config::demo());
    let (mut m0, _) = kadgate::convert::read_message(&raw, &rules).unwrap();
    let (mut m1, _) = kadgate::convert::read_message(&out, &rules).unwrap();
    // The referral named the old receiver as its performer: that is now the new unit.
    let (kadgate::model::Body::Referral(r0), kadgate::model::Body::Referral(r1)) =
        (&mut m0.body, &mut m1.body)
    else {
        panic!("both read as referrals");
    };
    let provider = r1.service_provider.take().expect("a performer");
    assert_eq!(provider.her_id(), Some("990004"));
    r0.service_provider = None;
    assert!(m1.body == m0.body, "the referral itself is unchanged");
    assert_eq!(m1.header.patient, m0.header.patient);
    assert_eq!(m1.header.sender, m0.header.sender);
    assert_eq!(
        m1.header.receiver.as_ref().and_then(|r| r.her_id()),
        Some("990004")
    );
}

#[test]
fn a_receiver_with_levels_or_an_odd_bundle_is_left_to_the_encoder() {
    let raw = input();
    let mut nested = org("990060", "990001014", "Fjordvik kommune");
    nested.unit = Some(Box::new(org("990003", "990001014", "KAD")));
    let to = |r: &Organisation| {
        readdress(
            &raw,
            &Readdress {
                msg_id: "7d0c2a3e-5b1f-4c2e-9a61-0f3b8e2d4c10",
                bundle_id: "0b9e7c55-2d41-4f3a-8c7e-6a5d4c3b2a19",
                now: "2026-11-25T12:00:00Z",
                receiver: r,
            },
        )
    };
    assert!(to(&nested).is_none());
    assert!(readdress(
        b"{\"resourceType\":\"Patient\"}",
        &Readdress {
            msg_id: "a",
            bundle_id: "b",
            now: "c",
            receiver: &org("1", "2", "x"),
        }
    )
    .is_none());
}
