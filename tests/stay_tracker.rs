//! The stay tracker on its own, on simulated time: a GP register that is down never loses an
//! epicrisis (it waits, with an alert, and goes out when the register answers again).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use common::stay_msgs::{epicrisis, Epi};
use kadgate::clock::{Clock, ManualClock};
use kadgate::model::ServiceType;
use kadgate::registry::{Directory, FileDirectory, GpAssignment, KadUnit, Party, RegistryError};
use kadgate::stay::{StayConfig, Tracker};
use kadgate::store::sqlite::{SqliteOptions, SqliteStore};
use kadgate::store::{
    Direction, Effects, IngestOutcome, NewMessage, NewStayWork, OutboxFilter, Store,
};

const REGISTRY: &str = r#"
[[kad_units]]
her_id = "990002"
name = "Testbyen KAD"
municipality = "0301"
municipalities = ["0301"]
beds = 12
formats = ["fhir-r4"]
endpoint = { folder = "outbox/kad" }

[[parties]]
her_id = "990001"
kind = "gp-office"
name = "Testbyen legekontor"
municipality = "0301"
formats = ["epikrise12"]
endpoint = { folder = "outbox/legekontor" }

[[parties]]
her_id = "990011"
kind = "gp"
name = "Lege, Test"
org_her_id = "990001"
municipality = "0301"

[[gp_lists]]
gp = "990011"
patients = [{ nin = "27094100211", from = "2005-01-01" }]
"#;

/// A directory whose GP register can be switched off.
struct Flaky {
    inner: FileDirectory,
    down: AtomicBool,
}

impl Flaky {
    /// The test directory (endpoints under `base`), with its GP register up or down.
    fn over_file(base: &std::path::Path, down: bool) -> Arc<Flaky> {
        Arc::new(Flaky {
            inner: FileDirectory::parse(REGISTRY, "test registry")
                .unwrap()
                .with_base(base),
            down: AtomicBool::new(down),
        })
    }

    fn check(&self) -> Result<(), RegistryError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(RegistryError::Unavailable {
                register: "GP".into(),
                reason: "connection refused".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Directory for Flaky {
    async fn kad_units(&self) -> Result<Vec<KadUnit>, RegistryError> {
        self.inner.kad_units().await
    }
    async fn kad_unit(&self, her_id: &str) -> Result<Option<KadUnit>, RegistryError> {
        self.inner.kad_unit(her_id).await
    }
    async fn unit_for_municipality(&self, m: &str) -> Result<Option<KadUnit>, RegistryError> {
        self.inner.unit_for_municipality(m).await
    }
    async fn party(&self, her_id: &str) -> Result<Option<Party>, RegistryError> {
        self.inner.party(her_id).await
    }
    async fn gp_for_patient(
        &self,
        nin: &str,
        on: NaiveDate,
    ) -> Result<Option<GpAssignment>, RegistryError> {
        self.check()?;
        self.inner.gp_for_patient(nin, on).await
    }
    async fn home_nursing(&self, m: &str) -> Result<Option<Party>, RegistryError> {
        self.inner.home_nursing(m).await
    }
    async fn municipality_for_postcode(&self, pc: &str) -> Result<Option<String>, RegistryError> {
        self.inner.municipality_for_postcode(pc).await
    }
}

fn stored(o: IngestOutcome) -> i64 {
    match o {
        IngestOutcome::Stored { id } => id,
        other => panic!("not stored: {other:?}"),
    }
}

/// Store a message from the unit as the pipeline does, queued for the stay tracker.
async fn from_unit(
    store: &Arc<dyn Store>,
    clock: &ManualClock,
    raw: Vec<u8>,
    msg_id: &str,
    kind: &str,
    nin: &str,
) -> i64 {
    stored(
        store
            .ingest(NewMessage {
                received_at: clock.now_rfc3339(),
                channel: "test".into(),
                direction: Direction::In,
                format: None,
                msg_type: None,
                msg_id: Some(msg_id.into()),
                sender_key: Some("HER:990002".into()),
                dedup_key: Some(format!("HER:990002/{msg_id}")),
                status: "accepted".into(),
                raw,
                header_json: None,
                body_json: None,
                findings_json: "[]".into(),
                correlates_to: None,
                receipts: Vec::new(),
                reply_json: None,
                content_sha256: None,
                effects: Effects {
                    stay_work: Some(NewStayWork {
                        kind: kind.into(),
                        patient_nin: Some(nin.into()),
                        created_ms: clock.now_ms(),
                    }),
                    ..Effects::default()
                },
            })
            .await
            .unwrap(),
    )
}

fn open_store(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&dir.join("kadgate.db"), SqliteOptions::default()).unwrap())
}

fn rules() -> Arc<kadgate::check::Rules> {
    Arc::new(kadgate::check::Rules::from_config(
        &kadgate::config::Config::demo(),
    ))
}

#[tokio::test]
async fn a_register_that_is_down_delays_the_epicrisis_with_an_alert_and_never_loses_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let directory = Flaky::over_file(dir.path(), true);
    let clock = ManualClock::starting_now();
    let nin = "27094100211";
    let (raw, msg_id) = epicrisis(&Epi {
        nin,
        referral_id: None,
        doc_id: "EPI-DOWN",
        service_type: ServiceType::New,
        discharged: "2026-11-20",
        copy_to_home_nursing: false,
    });
    let id = from_unit(&store, &clock, raw, &msg_id, "epicrisis", nin).await;
    let config = StayConfig {
        enabled: true,
        link_grace_secs: 0,
        register_retry_secs: 30,
        ..StayConfig::default()
    };
    let tracker = Tracker::new(
        store.clone(),
        directory.clone(),
        rules(),
        config,
        clock.clone(),
        Default::default(),
        Default::default(),
    );
    let rows = |store: Arc<dyn Store>| async move {
        store
            .list_outbox(&OutboxFilter {
                message_id: Some(id),
                limit: 10,
                ..OutboxFilter::default()
            })
            .await
            .unwrap()
    };

    // No referral came through kadgate: the epicrisis opens its stay, then waits for the register.
    assert_eq!(tracker.step().await.unwrap(), 1);
    assert_eq!(tracker.step().await.unwrap(), 1);
    assert!(rows(store.clone()).await.is_empty());
    let alerts = store.alerts(true, 10).await.unwrap();
    let a = alerts
        .iter()
        .find(|a| a.kind == "stay.register-unavailable")
        .unwrap_or_else(|| panic!("{alerts:#?}"));
    assert!(!a.reason.contains(nin));
    // Not due again before the retry time; an hour of the register being down changes nothing.
    assert_eq!(tracker.step().await.unwrap(), 0);
    for _ in 0..120 {
        clock.advance(Duration::from_secs(30));
        tracker.step().await.unwrap();
    }
    assert!(rows(store.clone()).await.is_empty());
    assert_eq!(
        store
            .alerts(true, 10)
            .await
            .unwrap()
            .iter()
            .filter(|a| a.kind == "stay.register-unavailable")
            .count(),
        1,
        "one open alert, not one per try"
    );

    // The register answers again: the epicrisis goes to the GP and the alert is cleared.
    directory.down.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(30));
    assert_eq!(tracker.step().await.unwrap(), 1);
    let out = rows(store.clone()).await;
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].recipient_key, "HER:990011");
    assert_eq!(out[0].purpose, "epicrisis");
    assert!(store
        .alerts(true, 10)
        .await
        .unwrap()
        .iter()
        .all(|a| a.kind != "stay.register-unavailable"));
    // Done: nothing more to do, however long we wait.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(tracker.step().await.unwrap(), 0);
    assert_eq!(rows(store.clone()).await.len(), 1);
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_discharge_without_an_epicrisis_by_the_deadline_alerts_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let directory = Flaky::over_file(dir.path(), false);
    let clock = ManualClock::starting_now();
    let nin = "30014500282";
    // The unit's discharge notice (fixtures/stays), discharged "now" on the simulated clock.
    let now = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(clock.now_ms())
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let discharge = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/stays/plo16-log-utskrevet.xml"),
    )
    .unwrap()
    .replace("2026-03-05T11:00:00", &now);
    let msg_id = "57a10000-0000-4000-8000-000000000002";
    from_unit(&store, &clock, discharge.into_bytes(), msg_id, "event", nin).await;
    let tracker = Tracker::new(
        store.clone(),
        directory,
        rules(),
        StayConfig {
            enabled: true,
            link_grace_secs: 0,
            epicrisis_deadline_hours: 24,
            ..StayConfig::default()
        },
        clock.clone(),
        Default::default(),
        Default::default(),
    );
    while tracker.step().await.unwrap() > 0 {}
    let stays = store.stays_of_patient(nin, 10).await.unwrap();
    assert_eq!(stays.len(), 1);
    assert_eq!(stays[0].state, "discharged");
    let due = stays[0].epicrisis_due_ms.expect("an epicrisis is due");
    assert!(
        (due - clock.now_ms() - 24 * 3_600_000).abs() < 1_000,
        "{due}"
    );

    let missing = |store: Arc<dyn Store>| async move {
        store
            .alerts(true, 10)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.kind == "stay.epicrisis-missing")
            .collect::<Vec<_>>()
    };
    clock.advance(Duration::from_secs(23 * 3600));
    assert_eq!(tracker.check_overdue().await.unwrap(), 0);
    assert!(missing(store.clone()).await.is_empty());
    clock.advance(Duration::from_secs(3600 + 1));
    assert_eq!(tracker.check_overdue().await.unwrap(), 1);
    let alerts = missing(store.clone()).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].unit_key.as_deref(), Some("HER:990002"));
    assert!(!alerts[0].reason.contains(nin));
    // Raised once: the next check finds nothing more to say.
    assert_eq!(tracker.check_overdue().await.unwrap(), 0);

    // The epicrisis comes late: delivered, and the alert is cleared.
    let (raw, epi_id) = epicrisis(&Epi {
        nin,
        referral_id: None,
        doc_id: "EPI-LATE",
        service_type: ServiceType::New,
        discharged: &now,
        copy_to_home_nursing: false,
    });
    from_unit(&store, &clock, raw, &epi_id, "epicrisis", nin).await;
    while tracker.step().await.unwrap() > 0 {}
    assert!(missing(store.clone()).await.is_empty());
    let stays = store.stays_of_patient(nin, 10).await.unwrap();
    assert_eq!(stays.len(), 1, "the epicrisis joined the discharged stay");
    assert_eq!(stays[0].state, "closed");
    assert!(stays[0].epicrisis_due_ms.is_none());
    store.close().await.unwrap();
}
