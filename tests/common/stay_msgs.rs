//! Messages a KAD unit sends about a stay, built for tests from the official examples' clinical
//! content with synthetic parties, patients and ids.
#![allow(dead_code)]

use kadgate::model::{
    Body, Conversation, CopyReceiver, Format, Ident, Organisation, Patient, PatientIdent,
    ServiceType,
};

pub fn her(id: &str) -> Ident {
    Ident::new(id, "HER")
}

/// What an epicrisis from the unit says.
pub struct Epi<'a> {
    pub nin: &'a str,
    pub referral_id: Option<&'a str>,
    pub doc_id: &'a str,
    pub service_type: ServiceType,
    pub discharged: &'a str,
    pub copy_to_home_nursing: bool,
}

/// An Epikrise 1.2 from Testbyen KAD to the GP office (the official example's clinical content,
/// our parties, patient and ids), encoded by kadgate's own encoder.
pub fn epicrisis(e: &Epi<'_>) -> (Vec<u8>, String) {
    let path = super::kith("epikrise/examples/sarepta/Epikrise_v1-2/epikrise_v1.2_n.xml");
    let rules = kadgate::check::Rules::from_config(&kadgate::config::Config::demo());
    let (mut msg, _) =
        kadgate::convert::read_message(&std::fs::read(path).unwrap(), &rules).unwrap();
    let msg_id = uuid::Uuid::new_v4().to_string();
    let unit = Organisation {
        name: Some("Testbyen KAD".into()),
        idents: vec![her("990002"), Ident::new("990001006", "ENH")],
        ..Organisation::default()
    };
    let office = Organisation {
        name: Some("Testbyen legekontor".into()),
        idents: vec![her("990001"), Ident::new("990003009", "ENH")],
        ..Organisation::default()
    };
    let patient = Patient {
        family_name: Some("Testesen".into()),
        given_name: Some("Kari".into()),
        idents: vec![PatientIdent {
            id: e.nin.into(),
            kind: "FNR".into(),
        }],
        ..Patient::default()
    };
    msg.header.msg_id = Some(msg_id.clone());
    msg.header.sender = Some(unit.clone());
    msg.header.receiver = Some(office.clone());
    msg.header.copy_receivers.clear();
    msg.header.patient = Some(patient.clone());
    msg.header.conversation = None::<Conversation>;
    let Body::Epicrisis(ep) = &mut msg.body else {
        panic!("the example is an epicrisis")
    };
    ep.id = Some(e.doc_id.into());
    ep.referral_id = e.referral_id.map(str::to_owned);
    if let Some(r) = ep.referral.as_mut() {
        r.id = e.referral_id.map(str::to_owned);
    }
    ep.service_type = Some(e.service_type);
    ep.patient = Some(patient);
    ep.service_provider = Some(unit);
    ep.requester = Some(office);
    ep.discharged = Some(e.discharged.into());
    if e.copy_to_home_nursing {
        let home_nursing = Organisation {
            name: Some("Hjemmesykepleien Testbyen".into()),
            idents: vec![her("990041")],
            ..Organisation::default()
        };
        msg.header.copy_receivers = vec![CopyReceiver {
            role: Some("COP".into()),
            party: home_nursing.clone(),
        }];
        ep.copy_to = vec![home_nursing];
    }
    let bytes = kadgate::kith::encode::encode(&msg, Format::Epikrise12).expect("encodes");
    (bytes, msg_id)
}
