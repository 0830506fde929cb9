#!/usr/bin/env python3
"""Write the synthetic referral vignettes for the admission rules.

Writes one FHIR R4 referral message Bundle per vignette into fixtures/rules/vignettes/ and the
decision table fixtures/rules/vignettes.toml (file, expected decision, expected NEWS2, rules that
must fire, why). Identities are synthetic: fødselsnummer / D-numbers built from the birth date with
valid check digits; every referral is dated 2026-03-02, so ages follow from the number.

Run from the repository root: python3 scripts/gen-rule-vignettes.py
"""
import json
import os
import uuid

OUT = "fixtures/rules/vignettes"
TABLE = "fixtures/rules/vignettes.toml"
AUTHORED = "2026-03-02T10:15:00+01:00"
NS = uuid.UUID("6f1c2d7e-2b7a-4c55-9a43-5b1d0c3e9a10")

W1 = [3, 7, 6, 1, 8, 9, 4, 5, 2]
W2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]


def check_digit(weights, digits):
    k = 11 - sum(w * d for w, d in zip(weights, digits)) % 11
    return 0 if k == 11 else (None if k == 10 else k)


def person_number(birth, male, dnr=False, seq=0):
    """A valid FNR (or D-number) for an ISO birth date."""
    y, m, d = (int(x) for x in birth.split("-"))
    if dnr:
        d += 40
    lo, hi = (0, 499) if y < 2000 else (500, 999)
    found = 0
    for ind in range(lo + 1, hi + 1):
        if (ind % 10) % 2 != (1 if male else 0):
            continue
        first9 = [int(c) for c in f"{d:02d}{m:02d}{y % 100:02d}{ind:03d}"]
        k1 = check_digit(W1, first9)
        if k1 is None:
            continue
        k2 = check_digit(W2, first9 + [k1])
        if k2 is None:
            continue
        if found == seq:
            return "".join(map(str, first9 + [k1, k2]))
        found += 1
    raise ValueError(birth)


ICPC = "http://hl7.org/fhir/sid/icpc-2"
ICD = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
KG_ASSESS = "http://example.org/kadgate/CodeSystem/clinical-assessment"
ACVPU = "http://example.org/kadgate/CodeSystem/acvpu"
FNR_OID = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR_OID = "urn:oid:2.16.578.1.12.4.1.4.2"


def vitals_obs(rr, spo2, flow, sbp, hr, acvpu, temp):
    """Observations for NEWS2 (None = that parameter is not measured)."""
    def q(code, display, value, unit, ucum):
        return {"code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": ucum}}
    out = []
    if rr is not None:
        out.append(q("9279-1", "Respiratory rate", rr, "/min", "/min"))
    if spo2 is not None:
        out.append(q("59408-5", "Oxygen saturation by pulse oximetry", spo2, "%", "%"))
    if flow is not None:
        out.append(q("3151-8", "Inhaled oxygen flow rate", flow, "L/min", "L/min"))
    if sbp is not None:
        out.append({"code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
                    "component": [
                        {"code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "Systolic"}]},
                         "valueQuantity": {"value": sbp, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}},
                        {"code": {"coding": [{"system": LOINC, "code": "8462-4", "display": "Diastolic"}]},
                         "valueQuantity": {"value": 70, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}}]})
    if hr is not None:
        out.append(q("8867-4", "Heart rate", hr, "/min", "/min"))
    if acvpu is not None:
        out.append({"code": {"coding": [{"system": LOINC, "code": "67775-7", "display": "Level of responsiveness"}]},
                    "valueCodeableConcept": {"coding": [{"system": ACVPU, "code": acvpu}]}})
    if temp is not None:
        out.append(q("8310-5", "Body temperature", temp, "Cel", "Cel"))
    for o in out:
        o["category"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}]
    return out


NORMAL = dict(rr=16, spo2=97, flow=0, sbp=130, hr=72, acvpu="A", temp=37.0)


def bundle(name, birth, male=False, dx=(), note="Observeres i KAD med ny vurdering i morgen. Behandling etter plan.",
           careplan=None, vitals=None, flags=(), suicide=None, ident="fnr", birth_date_in_patient=True,
           reason_codes=None):
    def u(part):
        return f"urn:uuid:{uuid.uuid5(NS, name + '/' + part)}"
    patient = {"resourceType": "Patient", "id": "pas",
               "name": [{"family": "Testesen", "given": ["Syntetisk"]}],
               "gender": "male" if male else "female"}
    if ident == "fnr":
        patient["identifier"] = [{"system": FNR_OID, "value": person_number(birth, male)}]
    elif ident == "dnr":
        patient["identifier"] = [{"system": DNR_OID, "value": person_number(birth, male, dnr=True)}]
    if birth_date_in_patient:
        patient["birthDate"] = birth
    subj = {"reference": u("patient")}
    entries = []
    support = []
    for n, (system, code, display, status) in enumerate(dx):
        cond = {"resourceType": "Condition", "id": f"dx{n}",
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": "active"}]},
                "code": {"coding": [{"system": system, "code": code, "display": display}]},
                "subject": subj}
        if status:
            cond["verificationStatus"] = {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": status}]}
        entries.append((u(f"dx{n}"), cond))
        support.append(u(f"dx{n}"))
    if vitals is not None:
        for n, o in enumerate(vitals_obs(**vitals)):
            o.update({"resourceType": "Observation", "id": f"vs{n}", "status": "final", "subject": subj,
                      "effectiveDateTime": "2026-03-02T09:50:00+01:00"})
            entries.append((u(f"vs{n}"), o))
            support.append(u(f"vs{n}"))
    if suicide:
        o = {"resourceType": "Observation", "id": "suicide", "status": "final", "subject": subj,
             "code": {"coding": [{"system": KG_ASSESS, "code": "suicide-risk"}]},
             "valueCodeableConcept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/risk-probability",
                                                  "code": suicide}]}}
        entries.append((u("suicide"), o))
        support.append(u("suicide"))
    for n, f in enumerate(flags):
        fl = {"resourceType": "Flag", "id": f"flag{n}", "status": "active", "subject": subj,
              "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category",
                                        "code": "safety"}]}],
              "code": {"coding": [{"system": KG_ASSESS, "code": f}]}}
        entries.append((u(f"flag{n}"), fl))
        support.append(u(f"flag{n}"))
    if careplan:
        cp = {"resourceType": "CarePlan", "id": "plan", "status": "active", "intent": "plan",
              "subject": subj, "description": careplan}
        entries.append((u("plan"), cp))
        support.append(u("plan"))
    sr = {"resourceType": "ServiceRequest", "id": "henv", "status": "active", "intent": "order",
          "priority": "urgent",
          "category": [{"text": "Innleggelse i kommunal akutt døgnenhet (KAD)"}],
          "code": {"text": "Øyeblikkelig hjelp døgnopphold"},
          "subject": subj, "authoredOn": AUTHORED,
          "requester": {"reference": u("gp")},
          "performer": [{"reference": u("kad")}]}
    if reason_codes:
        sr["reasonCode"] = [{"coding": [{"system": s, "code": c, "display": d}]} for s, c, d in reason_codes]
    if support:
        sr["supportingInfo"] = [{"reference": s} for s in support]
    if note:
        sr["note"] = [{"text": note}]
    header = {"resourceType": "MessageHeader", "id": "hdr",
              "eventCoding": {"system": "http://example.org/kadgate/CodeSystem/message-event",
                              "code": "kad-henvisning"},
              "destination": [{"name": "KAD", "endpoint": "urn:oid:2.16.578.1.12.4.1.2:990002",
                               "receiver": {"reference": u("kad")}}],
              "sender": {"reference": u("office")},
              "source": {"name": "Testbyen legekontor EPJ", "software": "test",
                         "endpoint": "urn:oid:2.16.578.1.12.4.1.2:990001"},
              "focus": [{"reference": u("sr")}]}
    gp = {"resourceType": "Practitioner", "id": "lege",
          "identifier": [{"system": "urn:oid:2.16.578.1.12.4.1.4.4", "value": "9144889"}],
          "name": [{"family": "Lege", "given": ["Test"]}]}
    office = {"resourceType": "Organization", "id": "legekontor",
              "identifier": [{"system": "urn:oid:2.16.578.1.12.4.1.4.101", "value": "990003009"},
                             {"system": "urn:oid:2.16.578.1.12.4.1.2", "value": "990001"}],
              "name": "Testbyen legekontor"}
    kad = {"resourceType": "Organization", "id": "kad",
           "identifier": [{"system": "urn:oid:2.16.578.1.12.4.1.4.101", "value": "990001006"},
                          {"system": "urn:oid:2.16.578.1.12.4.1.2", "value": "990002"}],
           "name": "Testbyen kommune, KAD-enhet"}
    all_entries = [(u("hdr"), header), (u("sr"), sr), (u("patient"), patient), (u("gp"), gp),
                   (u("office"), office), (u("kad"), kad)] + entries
    for full, res in all_entries:
        if res["resourceType"] not in ("MessageHeader",):
            res["id"] = full.rsplit(":", 1)[1]
    return {"resourceType": "Bundle", "id": str(uuid.uuid5(NS, name)),
            "meta": {"lastUpdated": "2026-03-02T10:16:00+01:00"},
            "type": "message", "timestamp": "2026-03-02T10:16:00+01:00",
            "entry": [{"fullUrl": f, "resource": r} for f, r in all_entries]}


ADULT = "1974-05-13"
ELDER = "1941-09-27"
YOUNG = "1998-11-02"
CHILD = "2017-06-21"
TEEN = "2010-08-15"


def dx(system, code, display, status="confirmed"):
    return (system, code, display, status)


PNEU = dx(ICPC, "R81", "Pneumoni")
V = []


def v(name, decision, why, news2=None, rules=(), **kw):
    V.append((name, decision, why, news2, list(rules), kw))


# Accepted
v("acc-pneumonia", "accepted", "clarified pneumonia, NEWS2 0", 0, ["somatic.clarified-acute"],
  birth=ADULT, dx=[PNEU], vitals=NORMAL)
v("acc-uti-careplan", "accepted", "clarified urinary infection, plan as a CarePlan", None, ["somatic.clarified-acute"],
  birth=ELDER, dx=[dx(ICD, "N39.0", "Urinveisinfeksjon")], note=None,
  careplan="Antibiotika iv, væske, observasjon av temperatur og allmenntilstand.")
v("acc-heart-failure-news2-3", "accepted", "heart-failure exacerbation, NEWS2 3 (low band)", 3,
  ["somatic.chronic-exacerbation"], birth=ELDER, male=True, dx=[dx(ICPC, "K77", "Hjertesvikt")],
  vitals=dict(NORMAL, rr=22, hr=95))
v("acc-copd", "accepted", "COPD exacerbation (ICD-10)", None, ["somatic.chronic-exacerbation"],
  birth=ELDER, dx=[dx(ICD, "J44.1", "KOLS med akutt forverring")])
v("acc-diabetes", "accepted", "diabetes, medication adjustment", None, ["somatic.chronic-exacerbation"],
  birth=ADULT, male=True, dx=[dx(ICPC, "T90", "Diabetes type 2")])
v("acc-kidney-stone", "accepted", "kidney-stone pain", None, ["somatic.clarified-acute"],
  birth=YOUNG, male=True, dx=[dx(ICPC, "U95", "Urinveisstein")])
v("acc-concussion", "accepted", "fall with concussion", None, ["somatic.clarified-acute"],
  birth=ELDER, dx=[dx(ICD, "S06.0", "Hjernerystelse")])
v("acc-news2-4", "accepted", "pneumonia, NEWS2 4 is still the low band", 4, ["somatic.clarified-acute"],
  birth=ADULT, dx=[PNEU], vitals=dict(NORMAL, rr=22, hr=95, temp=38.5))
v("acc-reasoncode-only", "accepted", "diagnosis only as reasonCode (not marked unclarified)", None,
  ["somatic.clarified-acute"], birth=ADULT, reason_codes=[(ICPC, "R81", "Pneumoni")])
v("acc-child-somatic", "accepted", "a child with a urinary infection: the age limit is for mental health only",
  None, ["somatic.clarified-acute"], birth=CHILD, dx=[dx(ICPC, "U71", "Cystitt")])
v("acc-news2-partial", "accepted", "pneumonia; temperature missing, so NEWS2 is not computed", None,
  ["somatic.clarified-acute"], birth=ADULT, dx=[PNEU], vitals=dict(NORMAL, temp=None))
v("acc-scale2-copd", "accepted", "hypercapnic respiratory failure: SpO2 scale 2 gives 4 (scale 1 would give 7)", 4,
  ["somatic.chronic-exacerbation"], birth=ELDER, male=True,
  dx=[dx(ICD, "J44.1", "KOLS med akutt forverring"), dx(ICD, "J96.1", "Kronisk respirasjonssvikt")],
  vitals=dict(NORMAL, rr=22, spo2=89, hr=95, temp=38.5))
v("mh-acc-depression", "accepted", "mental-health pathway: moderate depression in an adult", None,
  ["mental.mild-moderate"], birth=YOUNG, dx=[dx(ICD, "F32.1", "Moderat depressiv episode")])
v("mh-acc-detox", "accepted", "short uncomplicated detox", None, ["substance.uncomplicated-detox"],
  birth=ADULT, male=True, dx=[dx(ICD, "F10.2", "Alkoholavhengighet")])
v("mh-acc-crisis", "accepted", "psychosocial crisis (ICPC-2)", None, ["mental.mild-moderate"],
  birth=YOUNG, dx=[dx(ICPC, "P02", "Akutt stressreaksjon")])

# Always to hospital
v("hosp-stroke-icd", "not-accepted", "acute stroke (ICD-10 I63)", None, ["hospital.stroke"],
  birth=ELDER, male=True, dx=[dx(ICD, "I63.9", "Hjerneinfarkt")])
v("hosp-stroke-icpc", "not-accepted", "stroke (ICPC-2 K90)", None, ["hospital.stroke"],
  birth=ELDER, dx=[dx(ICPC, "K90", "Hjerneslag")])
v("hosp-tia-icpc", "not-accepted", "TIA (ICPC-2 K89)", None, ["hospital.stroke"],
  birth=ELDER, dx=[dx(ICPC, "K89", "TIA")])
v("hosp-mi-icd", "not-accepted", "myocardial infarction (ICD-10 I21)", None, ["hospital.myocardial-infarction"],
  birth=ADULT, male=True, dx=[dx(ICD, "I21.4", "Akutt subendokardielt hjerteinfarkt")])
v("hosp-mi-icpc", "not-accepted", "myocardial infarction (ICPC-2 K75)", None, ["hospital.myocardial-infarction"],
  birth=ELDER, male=True, dx=[dx(ICPC, "K75", "Akutt hjerteinfarkt")])
v("hosp-trauma-icd", "not-accepted", "injury of unspecified body region (T14)", None, ["hospital.trauma-unclear"],
  birth=YOUNG, male=True, dx=[dx(ICD, "T14", "Skade, uspesifisert")])
v("hosp-stroke-no-plan", "not-accepted", "precedence: an exclusion wins over missing content", None,
  ["hospital.stroke", "content.plan"], birth=ELDER, dx=[dx(ICD, "I61", "Hjerneblødning")], note=None)

# Exclusions
v("excl-news2-7", "not-accepted", "NEWS2 7", 7, ["somatic.news2-high"],
  birth=ADULT, dx=[PNEU], vitals=dict(NORMAL, rr=22, spo2=95, flow=2, hr=95, temp=38.5))
v("excl-news2-10", "not-accepted", "NEWS2 10, new confusion", 10, ["somatic.news2-high"],
  birth=ELDER, dx=[PNEU], vitals=dict(NORMAL, rr=26, spo2=93, hr=112, acvpu="C"))
v("mh-excl-child", "not-accepted", "a 15-year-old on the mental-health pathway (age from the FNR)", None,
  ["mental.child-or-adolescent"], birth=TEEN, dx=[dx(ICD, "F32.1", "Moderat depressiv episode")],
  birth_date_in_patient=False)
v("mh-excl-child-dnr", "not-accepted", "a 15-year-old, age from a D-number", None,
  ["mental.child-or-adolescent"], birth=TEEN, male=True, ident="dnr", birth_date_in_patient=False,
  dx=[dx(ICPC, "P74", "Angstlidelse")])
v("mh-excl-suicide-high", "not-accepted", "high suicide risk (structured assessment)", None,
  ["mental.suicide-risk-high"], birth=YOUNG, dx=[dx(ICD, "F32.1", "Moderat depressiv episode")], suicide="high")
v("mh-excl-self-harm-code", "not-accepted", "intentional self-poisoning (X60)", None, ["mental.suicide-risk-high"],
  birth=YOUNG, dx=[dx(ICD, "X60", "Villet egenforgiftning")])
v("mh-excl-violence-flag", "not-accepted", "violence flag", None, ["mental.violence"],
  birth=ADULT, male=True, dx=[dx(ICD, "F43.0", "Akutt stressreaksjon")], flags=["violence"])
v("mh-excl-violence-history", "not-accepted", "history of serious violence (flag)", None, ["mental.violence"],
  birth=ADULT, male=True, dx=[dx(ICD, "F10.2", "Alkoholavhengighet")], flags=["violence-history"])
v("mh-excl-coercion-flag", "not-accepted", "admission needs coercion (flag)", None, ["mental.coercion"],
  birth=ADULT, dx=[dx(ICD, "F43.0", "Akutt stressreaksjon")], flags=["coercion"])
v("mh-excl-psychosis", "not-accepted", "psychotic state", None, ["mental.psychosis-unrest"],
  birth=YOUNG, male=True, dx=[dx(ICD, "F20.0", "Paranoid schizofreni")])
v("mh-excl-delirium", "not-accepted", "delirium, not detox", None, ["mental.delirium"],
  birth=ELDER, dx=[dx(ICD, "F05.9", "Delirium")])
v("subst-excl-poisoning", "not-accepted", "acute unclear intoxication with medicines (T42)", None,
  ["substance.acute-unclear-intoxication"], birth=YOUNG, dx=[dx(ICD, "T42.4", "Forgiftning benzodiazepiner")])
v("subst-excl-acute-alcohol", "not-accepted", "acute alcohol intoxication (F10.0)", None,
  ["substance.acute-unclear-intoxication"], birth=ADULT, male=True, dx=[dx(ICD, "F10.0", "Akutt alkoholforgiftning")])
v("subst-excl-icpc", "not-accepted", "poisoning by medicines (ICPC-2 A84)", None,
  ["substance.acute-unclear-intoxication"], birth=ADULT, dx=[dx(ICPC, "A84", "Forgiftning legemiddel")])

# Incomplete
v("inc-no-diagnosis", "incomplete", "no diagnosis", None, ["content.diagnosis"], birth=ADULT)
v("inc-no-plan", "incomplete", "no treatment and observation plan", None, ["content.plan"],
  birth=ADULT, dx=[PNEU], note=None)
v("inc-no-identity", "incomplete", "patient named without number, birth date or sex is not identified", None,
  ["content.patient-identity"], birth=ADULT, dx=[PNEU], ident=None, birth_date_in_patient=False)
v("inc-nothing", "incomplete", "neither diagnosis nor plan", None, ["content.diagnosis", "content.plan"],
  birth=ELDER, note=None)

# Needs review
v("rev-news2-5", "needs-review", "NEWS2 5", 5, ["review.news2-medium"],
  birth=ADULT, dx=[PNEU], vitals=dict(NORMAL, rr=22, spo2=95, hr=95, temp=38.5))
v("rev-news2-6", "needs-review", "NEWS2 6 on oxygen", 6, ["review.news2-medium"],
  birth=ADULT, dx=[PNEU], vitals=dict(NORMAL, rr=22, spo2=96, flow=2, hr=95, temp=38.5))
v("rev-unclarified", "needs-review", "provisional (unclarified) diagnosis", None, ["review.unclarified-diagnosis"],
  birth=ADULT, dx=[dx(ICPC, "R81", "Pneumoni", "provisional")])
v("mh-rev-suicide-moderate", "needs-review", "moderate suicide risk", None, ["review.suicide-risk-moderate"],
  birth=YOUNG, dx=[dx(ICD, "F32.1", "Moderat depressiv episode")], suicide="moderate")
v("mh-rev-suicidal-ideation", "needs-review", "suicidal ideation as a Condition (R45.8)", None,
  ["review.suicide-risk-moderate"], birth=YOUNG, dx=[dx(ICD, "R45.8", "Selvmordstanker")])
v("rev-elderly-function", "needs-review", "weak evidence only: acute loss of function in an 84-year-old", None,
  ["review.elderly-loss-of-function"], birth=ELDER, dx=[dx(ICPC, "U71", "Cystitt")],
  note="Akutt funksjonssvikt siste døgn, uklar årsak. Observeres, ny vurdering i morgen.")
v("rev-no-inclusion", "needs-review", "no inclusion criterion holds (low back pain)", None, [],
  birth=ADULT, dx=[dx(ICPC, "L03", "Korsryggsymptomer")])
v("weak-coercion", "needs-review", "weak evidence only: the text says the patient resists admission", None,
  ["mental.coercion"], birth=ADULT, dx=[dx(ICD, "F43.0", "Akutt stressreaksjon")],
  note="Pasienten motsetter seg innleggelse. Plan: samtaler og observasjon.")
v("weak-threats", "needs-review", "weak evidence only: threatening behaviour in free text", None,
  ["mental.violence"], birth=ADULT, male=True, dx=[PNEU],
  note="Har vært truende mot personalet på legevakten. Antibiotika og observasjon.")
v("weak-trauma", "needs-review", "weak evidence only: high-energy trauma in free text", None,
  ["hospital.trauma-unclear"], birth=YOUNG, male=True, dx=[dx(ICD, "S06.0", "Hjernerystelse")],
  note="Høyenergitraume, sykkelulykke. Observasjon med nevrostatus hver time.")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".json"):
            os.remove(os.path.join(OUT, f))
    lines = ["# Decision table for the admission-rule vignettes (national default rule set).",
             "# Written by scripts/gen-rule-vignettes.py together with the vignettes.", ""]
    for name, decision, why, news2, rules, kw in V:
        b = bundle(name, **kw)
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as fh:
            json.dump(b, fh, ensure_ascii=False, indent=2)
            fh.write("\n")
        lines.append("[[vignette]]")
        lines.append(f'file = "{name}.json"')
        lines.append(f'decision = "{decision}"')
        if news2 is not None:
            lines.append(f"news2 = {news2}")
        lines.append("rules = [" + ", ".join(f'"{r}"' for r in rules) + "]")
        lines.append(f'why = "{why}"')
        lines.append("")
    with open(TABLE, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    print(f"{len(V)} vignettes")


main()
