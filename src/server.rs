//! Wiring: open the store, load the schemas, run the HTTP listener and the drop folder until a
//! shutdown signal, then finish in-flight work and close the store.
//!
//! Like mini-redis, [`run`] takes a bound listener and a shutdown future, so tests start a real
//! server on `127.0.0.1:0` and stop it when they like.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use std::collections::HashMap;

use crate::admission::Admission;
use crate::check::Rules;
use crate::config::Config;
use crate::delivery::worker::Worker;
use crate::dropfolder::DropFolder;
use crate::http::{router, AppState};
use crate::pipeline::Pipeline;
use crate::rules::RuleSet;
use crate::store::postgres::{PgOptions, PgStore};
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::Store;
use crate::xsd::SchemaSet;

/// Everything a running gateway holds.
pub struct Gateway {
    pub config: Config,
    pub pipeline: Arc<Pipeline>,
    pub store: Arc<dyn Store>,
}

impl Gateway {
    /// Open the store and load the KITH schema set from `standards/kith`.
    pub async fn open(config: Config, standards: &Path) -> anyhow::Result<Gateway> {
        std::fs::create_dir_all(&config.server.data_dir)?;
        let kith = standards.join("kith");
        let started = std::time::Instant::now();
        let schemas = SchemaSet::load(&kith)
            .map_err(|e| anyhow::anyhow!("loading schemas from {}: {e}", kith.display()))?;
        tracing::info!(
            schemas = schemas.schema_count(),
            ms = started.elapsed().as_millis() as u64,
            "schema set compiled"
        );
        let store = open_store(&config).await?;
        let rules = Arc::new(Rules::from_config(&config));
        let mut pipeline = Pipeline::with_workers(
            store.clone(),
            rules,
            Some(Arc::new(schemas)),
            config.server.workers,
        );
        if config.admission.enabled {
            let admission = load_admission(&config)?.with_stays(config.stays.enabled);
            pipeline = pipeline.with_admission(Arc::new(admission));
        }
        pipeline = pipeline.with_stays(config.stays.enabled && config.admission.enabled);
        let pipeline = Arc::new(pipeline);
        Ok(Gateway {
            config,
            pipeline,
            store,
        })
    }
}

/// The store the configuration names: PostgreSQL (`store.kind = "postgres"`, URL from
/// `KADGATE_PG_URL` or `store.url`) or the SQLite file under the data directory.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if config.store.kind == "postgres" {
        let url = std::env::var("KADGATE_PG_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| config.store.url.clone())
            .ok_or_else(|| anyhow::anyhow!("store.kind = \"postgres\" needs store.url"))?;
        return Ok(Arc::new(
            PgStore::connect(&url, PgOptions::default()).await?,
        ));
    }
    Ok(Arc::new(SqliteStore::open(
        &config.sqlite_path(),
        SqliteOptions {
            max_batch: config.store.max_batch,
            ..SqliteOptions::default()
        },
    )?))
}

/// The rule sets and the directory named by `[admission]`.
pub fn load_admission(config: &Config) -> anyhow::Result<Admission> {
    let a = &config.admission;
    let default_rules = Arc::new(RuleSet::load(&a.ruleset)?);
    let mut unit_rules = HashMap::new();
    for (unit, path) in &a.unit_rulesets {
        unit_rules.insert(
            crate::config::normalise_id(unit),
            Arc::new(RuleSet::load(path)?),
        );
    }
    // The directory: the file (paths in it under the data directory), or NHN's registers over
    // it (`[registry]`), cached.
    let directory = crate::registry::open_directory(config)?;
    tracing::info!(
        ruleset = default_rules.id.as_str(),
        unit_rulesets = unit_rules.len(),
        "admission rules and directory loaded"
    );
    Ok(Admission::new(
        default_rules,
        unit_rules,
        directory,
        config.routing.clone(),
        a.clone(),
    ))
}

/// Serve until `shutdown` completes: stop accepting, let in-flight requests and the drop folder's
/// current file finish, then flush and close the store.
pub async fn run(
    listener: TcpListener,
    gw: Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = Arc::new(AppState {
        pipeline: gw.pipeline.clone(),
        listening: Default::default(),
        max_body_bytes: gw.config.server.max_body_bytes,
        operator_token: gw.config.api.operator_token.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let drop_task = if gw.config.dropfolder.enabled {
        let df = DropFolder {
            root: gw.config.drop_dir(),
            poll: Duration::from_millis(gw.config.dropfolder.poll_ms),
        };
        df.create_dirs()?;
        Some(tokio::spawn(df.run(gw.pipeline.clone(), stop_rx.clone())))
    } else {
        None
    };
    let grace = Duration::from_secs(gw.config.server.shutdown_grace_secs);
    let worker_task = if gw.config.delivery.enabled {
        let worker = Worker::new(
            gw.store.clone(),
            gw.pipeline.rules.clone(),
            gw.config.delivery.clone(),
            gw.pipeline.wake(),
        );
        Some(tokio::spawn(worker.run(stop_rx.clone(), grace)))
    } else {
        None
    };
    let stay_task = match gw.pipeline.admission() {
        Some(adm) if gw.config.stays.enabled => {
            let tracker = crate::stay::Tracker::new(
                gw.store.clone(),
                adm.directory().clone(),
                gw.pipeline.rules.clone(),
                gw.config.stays.clone(),
                crate::clock::system(),
                gw.pipeline.stay_wake(),
                gw.pipeline.wake(),
            );
            Some(tokio::spawn(tracker.run(stop_rx.clone())))
        }
        _ => None,
    };
    state.listening.store(true, Ordering::SeqCst);
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let app = router(state.clone());
    let mut http_stop = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = http_stop.wait_for(|v| *v).await;
    });
    let server = tokio::spawn(async move { server.await });
    shutdown.await;
    tracing::info!("shutting down: no new work accepted, finishing in-flight work");
    state.listening.store(false, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    if tokio::time::timeout(grace, server).await.is_err() {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
    if let Some(t) = drop_task {
        let _ = tokio::time::timeout(grace, t).await;
    }
    if let Some(t) = stay_task {
        let _ = tokio::time::timeout(grace, t).await;
    }
    if let Some(t) = worker_task {
        let _ = tokio::time::timeout(grace, t).await;
    }
    gw.store.close().await?;
    tracing::info!("store flushed and closed");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
