//! Open-loop load for the end-to-end benchmark (`scripts/bench-e2e.sh`): POST the ~10 KB FHIR
//! referral message to kadgate at a fixed RATE per second for SECS seconds, each with a fresh
//! MessageHeader.id and Bundle.id, whether or not earlier requests have been answered (so a slow
//! gateway shows up as latency, not as a lower offered rate). Then wait until every referral's
//! outbox rows are final and read kadgate's SQLite store for the end-to-end figures:
//!
//!   referral → decided → delivered to the unit system and acknowledged by it
//!   = (the unit's receipt recorded: `outbox.acked_ms`) − (request sent by this program),
//!
//! and the same for the business reply to the referrer. Both clocks are this machine's.
//!
//!   usage: e2e_load URL RATE SECS DB_PATH MESSAGE_FILE

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut v: Vec<i64>) {
    v.sort_unstable();
    println!(
        "{name}: n={} p50={} ms p90={} ms p99={} ms p99.9={} ms max={} ms",
        v.len(),
        percentile(&v, 0.50),
        percentile(&v, 0.90),
        percentile(&v, 0.99),
        percentile(&v, 0.999),
        v.last().copied().unwrap_or(-1)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 6,
        "usage: e2e_load URL RATE SECS DB_PATH MESSAGE_FILE"
    );
    let url = format!("{}/fhir/$process-message", args[1]);
    let rate: u64 = args[2].parse()?;
    let secs: u64 = args[3].parse()?;
    let db = args[4].clone();
    let template = std::fs::read_to_string(&args[5])?;
    let v: serde_json::Value = serde_json::from_str(&template)?;
    let bundle_id = v["id"].as_str().unwrap_or_default().to_owned();
    let msg_id = v["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(
        !bundle_id.is_empty() && !msg_id.is_empty(),
        "template needs Bundle.id and MessageHeader.id"
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(30))
        .build()?;
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let mut sent: HashMap<String, i64> = HashMap::new();
    let mut http_ms: Vec<i64> = Vec::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i64>();

    let total = rate * secs;
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..total {
        ticker.tick().await;
        let id = uuid::Uuid::new_v4().to_string();
        let body = template
            .replace(&msg_id, &id)
            .replace(&bundle_id, &uuid::Uuid::new_v4().to_string());
        sent.insert(id, now_ms());
        let (client, url, ok, bad, tx) = (
            client.clone(),
            url.clone(),
            ok.clone(),
            bad.clone(),
            tx.clone(),
        );
        tokio::spawn(async move {
            let t = Instant::now();
            let r = client
                .post(&url)
                .header("content-type", "application/fhir+json")
                .body(body)
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => {
                    let _ = r.bytes().await;
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = tx.send(t.elapsed().as_millis() as i64);
        });
    }
    drop(tx);
    let offered = start.elapsed();
    while let Some(ms) = rx.recv().await {
        http_ms.push(ms);
    }
    println!(
        "offered {total} referrals in {:.1} s ({:.0}/s); answers: {} ok, {} not ok",
        offered.as_secs_f64(),
        total as f64 / offered.as_secs_f64(),
        ok.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed)
    );
    report("HTTP answer (receipt)", http_ms);

    // Wait until every outbox row is final (acked, nacked or dead).
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let open: i64 = conn.query_row(
            "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sent')",
            [],
            |r| r.get(0),
        )?;
        if open == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{open} outbox rows still open after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut stmt = conn.prepare(
        "SELECT m.msg_id, o.purpose, o.state, o.acked_ms FROM outbox o JOIN messages m ON m.id = o.message_id",
    )?;
    let mut e2e = Vec::new();
    // End-to-end latencies by the 5-second window the referral was sent in.
    let first_sent = sent.values().copied().min().unwrap_or(0);
    let mut windows: Vec<Vec<i64>> = Vec::new();
    let mut reply = Vec::new();
    let mut states: HashMap<(String, String), u64> = HashMap::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<i64>>(3)?,
        ))
    })?;
    for row in rows {
        let (id, purpose, state, acked) = row?;
        *states.entry((purpose.clone(), state.clone())).or_default() += 1;
        let (Some(id), Some(acked)) = (id, acked) else {
            continue;
        };
        let Some(t0) = sent.get(&id) else { continue };
        match purpose.as_str() {
            "referral" => {
                e2e.push(acked - t0);
                let window = usize::try_from((t0 - first_sent) / 5_000).unwrap_or(0);
                if windows.len() <= window {
                    windows.resize_with(window + 1, Vec::new);
                }
                windows[window].push(acked - t0);
            }
            "business-reply" => reply.push(acked - t0),
            _ => {}
        }
    }
    let mut states: Vec<_> = states.into_iter().collect();
    states.sort();
    println!("outbox rows by purpose and state: {states:?}");
    report(
        "end to end: referral sent → delivered to the unit and acknowledged",
        e2e,
    );
    report(
        "business reply: referral sent → reply acknowledged by the referrer",
        reply,
    );
    let by_window: Vec<String> = windows
        .into_iter()
        .map(|mut w| {
            w.sort_unstable();
            format!("{}/{}", percentile(&w, 0.5), percentile(&w, 0.99))
        })
        .collect();
    println!(
        "end to end p50/p99 ms by 5 s window: {}",
        by_window.join(" ")
    );
    Ok(())
}
