//! NEWS2 (National Early Warning Score 2, Royal College of Physicians 2017) from a referral's vital
//! signs.
//!
//! What it does: picks the latest value of each of the seven parameters from the model's
//! observations by their LOINC codes (REFERRAL-PROFILE.md) and adds up the chart's points.
//! What it must NOT do: score a missing parameter as 0. When any parameter is missing or
//! unreadable the score is `None` ("not computed"), never a guess.

use crate::model::Observation;

/// LOINC codes of the parameters.
pub mod loinc {
    pub const RESP_RATE: &str = "9279-1";
    pub const SPO2: [&str; 2] = ["59408-5", "2708-6"];
    pub const O2_FLOW: &str = "3151-8";
    pub const SYSTOLIC: &str = "8480-6";
    pub const PULSE: &str = "8867-4";
    pub const ACVPU: &str = "67775-7";
    pub const TEMPERATURE: &str = "8310-5";
}

/// Which SpO2 scale applies: 1 normally, 2 for hypercapnic respiratory failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spo2Scale {
    One,
    Two,
}

/// Level of consciousness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acvpu {
    Alert,
    /// New confusion, voice, pain, unresponsive: any of these scores 3.
    NotAlert,
}

/// The seven parameters, as measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vitals {
    pub resp_rate: f64,
    pub spo2: f64,
    pub on_oxygen: bool,
    pub systolic: f64,
    pub pulse: f64,
    pub consciousness: Acvpu,
    pub temperature: f64,
}

/// Points for one value against ascending upper bounds: the first band whose bound is not
/// exceeded gives its points; above the last bound the last points apply.
fn band(v: f64, bounds: &[(f64, u8)], above: u8) -> u8 {
    bounds
        .iter()
        .find(|(upper, _)| v <= *upper)
        .map_or(above, |(_, p)| *p)
}

pub fn resp_rate_points(v: f64) -> u8 {
    band(v, &[(8.0, 3), (11.0, 1), (20.0, 0), (24.0, 2)], 3)
}

pub fn spo2_points(v: f64, scale: Spo2Scale, on_oxygen: bool) -> u8 {
    match scale {
        Spo2Scale::One => band(v, &[(91.0, 3), (93.0, 2), (95.0, 1)], 0),
        Spo2Scale::Two => {
            let low = band(v, &[(83.0, 3), (85.0, 2), (87.0, 1), (92.0, 0)], 0);
            if v <= 92.0 || !on_oxygen {
                low
            } else {
                band(v, &[(94.0, 1), (96.0, 2)], 3)
            }
        }
    }
}

pub fn systolic_points(v: f64) -> u8 {
    band(v, &[(90.0, 3), (100.0, 2), (110.0, 1), (219.0, 0)], 3)
}

pub fn pulse_points(v: f64) -> u8 {
    band(
        v,
        &[(40.0, 3), (50.0, 1), (90.0, 0), (110.0, 1), (130.0, 2)],
        3,
    )
}

pub fn temperature_points(v: f64) -> u8 {
    band(v, &[(35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1)], 2)
}

/// The aggregate score.
pub fn score(v: &Vitals, scale: Spo2Scale) -> u8 {
    resp_rate_points(v.resp_rate)
        + spo2_points(v.spo2, scale, v.on_oxygen)
        + if v.on_oxygen { 2 } else { 0 }
        + systolic_points(v.systolic)
        + pulse_points(v.pulse)
        + match v.consciousness {
            Acvpu::Alert => 0,
            Acvpu::NotAlert => 3,
        }
        + temperature_points(v.temperature)
}

/// The latest observation with one of `codes` (by time as written; the later one in the list on a tie).
fn latest<'a>(obs: &'a [Observation], codes: &[&str]) -> Option<&'a Observation> {
    let mut best: Option<&Observation> = None;
    for o in obs {
        if !codes.contains(&o.code.code.trim()) {
            continue;
        }
        if best.is_none_or(|b| o.time.as_deref().unwrap_or("") >= b.time.as_deref().unwrap_or("")) {
            best = Some(o);
        }
    }
    best
}

fn number(obs: &[Observation], codes: &[&str]) -> Option<f64> {
    latest(obs, codes)
        .and_then(|o| o.value)
        .filter(|v| v.is_finite())
}

/// Read the seven parameters; `None` when any is missing.
pub fn vitals(obs: &[Observation]) -> Option<Vitals> {
    let acvpu = latest(obs, &[loinc::ACVPU])?
        .value_code
        .as_ref()?
        .code
        .trim()
        .to_ascii_uppercase();
    let consciousness = match acvpu.as_str() {
        "A" => Acvpu::Alert,
        "C" | "V" | "P" | "U" => Acvpu::NotAlert,
        _ => return None,
    };
    Some(Vitals {
        resp_rate: number(obs, &[loinc::RESP_RATE])?,
        spo2: number(obs, &loinc::SPO2)?,
        on_oxygen: number(obs, &[loinc::O2_FLOW])? > 0.0,
        systolic: number(obs, &[loinc::SYSTOLIC])?,
        pulse: number(obs, &[loinc::PULSE])?,
        consciousness,
        temperature: number(obs, &[loinc::TEMPERATURE])?,
    })
}

/// NEWS2 from observations, or `None` when a parameter is missing.
pub fn from_observations(obs: &[Observation], scale: Spo2Scale) -> Option<u8> {
    vitals(obs).map(|v| score(&v, scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Code;

    #[test]
    fn band_edges_follow_the_chart() {
        let rr = [
            (8.0, 3),
            (9.0, 1),
            (11.0, 1),
            (12.0, 0),
            (20.0, 0),
            (21.0, 2),
            (24.0, 2),
            (25.0, 3),
        ];
        for (v, p) in rr {
            assert_eq!(resp_rate_points(v), p, "resp rate {v}");
        }
        let s1 = [
            (91.0, 3),
            (92.0, 2),
            (93.0, 2),
            (94.0, 1),
            (95.0, 1),
            (96.0, 0),
        ];
        for (v, p) in s1 {
            assert_eq!(spo2_points(v, Spo2Scale::One, false), p, "spo2 {v}");
        }
        let s2_air = [
            (83.0, 3),
            (84.0, 2),
            (85.0, 2),
            (86.0, 1),
            (87.0, 1),
            (88.0, 0),
            (92.0, 0),
            (99.0, 0),
        ];
        for (v, p) in s2_air {
            assert_eq!(spo2_points(v, Spo2Scale::Two, false), p, "scale 2 air {v}");
        }
        let s2_o2 = [
            (88.0, 0),
            (92.0, 0),
            (93.0, 1),
            (94.0, 1),
            (95.0, 2),
            (96.0, 2),
            (97.0, 3),
        ];
        for (v, p) in s2_o2 {
            assert_eq!(
                spo2_points(v, Spo2Scale::Two, true),
                p,
                "scale 2 oxygen {v}"
            );
        }
        let sbp = [
            (90.0, 3),
            (91.0, 2),
            (100.0, 2),
            (101.0, 1),
            (110.0, 1),
            (111.0, 0),
            (219.0, 0),
            (220.0, 3),
        ];
        for (v, p) in sbp {
            assert_eq!(systolic_points(v), p, "systolic {v}");
        }
        let hr = [
            (40.0, 3),
            (41.0, 1),
            (50.0, 1),
            (51.0, 0),
            (90.0, 0),
            (91.0, 1),
            (110.0, 1),
            (111.0, 2),
            (130.0, 2),
            (131.0, 3),
        ];
        for (v, p) in hr {
            assert_eq!(pulse_points(v), p, "pulse {v}");
        }
        let t = [
            (35.0, 3),
            (35.1, 1),
            (36.0, 1),
            (36.1, 0),
            (38.0, 0),
            (38.1, 1),
            (39.0, 1),
            (39.1, 2),
        ];
        for (v, p) in t {
            assert_eq!(temperature_points(v), p, "temperature {v}");
        }
    }

    fn obs(code: &str, v: f64) -> Observation {
        Observation {
            code: Code::new(code, Some("http://loinc.org"), None),
            value: Some(v),
            ..Observation::default()
        }
    }

    fn full(
        rr: f64,
        spo2: f64,
        flow: f64,
        sbp: f64,
        hr: f64,
        acvpu: &str,
        t: f64,
    ) -> Vec<Observation> {
        let mut o = vec![
            obs(loinc::RESP_RATE, rr),
            obs(loinc::SPO2[0], spo2),
            obs(loinc::O2_FLOW, flow),
            obs(loinc::SYSTOLIC, sbp),
            obs(loinc::PULSE, hr),
            obs(loinc::TEMPERATURE, t),
        ];
        o.push(Observation {
            code: Code::new(loinc::ACVPU, Some("http://loinc.org"), None),
            value_code: Some(Code::new(acvpu, None, None)),
            ..Observation::default()
        });
        o
    }

    #[test]
    fn aggregate_scores() {
        let normal = full(16.0, 98.0, 0.0, 130.0, 72.0, "A", 37.0);
        assert_eq!(from_observations(&normal, Spo2Scale::One), Some(0));
        // 2 (rr 22) + 1 (spo2 95) + 2 (oxygen) + 0 + 1 (hr 95) + 0 + 1 (38.5) = 7
        let high = full(22.0, 95.0, 2.0, 120.0, 95.0, "A", 38.5);
        assert_eq!(from_observations(&high, Spo2Scale::One), Some(7));
        let confused = full(16.0, 98.0, 0.0, 130.0, 72.0, "C", 37.0);
        assert_eq!(from_observations(&confused, Spo2Scale::One), Some(3));
        let worst = full(30.0, 85.0, 4.0, 80.0, 140.0, "U", 34.0);
        assert_eq!(from_observations(&worst, Spo2Scale::One), Some(20));
    }

    #[test]
    fn missing_parameter_is_not_computed() {
        for skip in 0..7 {
            let mut o = full(16.0, 98.0, 0.0, 130.0, 72.0, "A", 37.0);
            o.remove(skip);
            assert_eq!(
                from_observations(&o, Spo2Scale::One),
                None,
                "without #{skip}"
            );
        }
        let mut bad = full(16.0, 98.0, 0.0, 130.0, 72.0, "X", 37.0);
        assert_eq!(from_observations(&bad, Spo2Scale::One), None);
        bad[0].value = None;
        assert_eq!(from_observations(&bad, Spo2Scale::One), None);
    }

    #[test]
    fn latest_value_wins() {
        let mut o = full(16.0, 98.0, 0.0, 130.0, 72.0, "A", 37.0);
        o[0].time = Some("2026-03-02T10:00:00+01:00".into());
        let mut later = obs(loinc::RESP_RATE, 26.0);
        later.time = Some("2026-03-02T11:00:00+01:00".into());
        o.insert(0, later);
        assert_eq!(from_observations(&o, Spo2Scale::One), Some(3));
    }
}
