//! The real binary as an operator runs it: SIGTERM exits 0; `kill -9` right after a 200 loses nothing.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(data: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kadgate"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .arg("--standards")
        .arg(standards())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kadgate starts")
}

async fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client().get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("kadgate did not become ready");
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test]
async fn sigterm_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn(dir.path(), port);
    wait_ready(&format!("http://127.0.0.1:{port}")).await;
    signal(&child, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "kadgate did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn kill_9_after_200_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let files = [
        "henvisning/examples/sarepta-akseptansetest/TestcaseHenvisningMottak/Case1.xml",
        "dialogmelding/examples/sarepta-akseptansetest/Testcase-Dialogmeldingen/Case1.xml",
        "epikrise/examples/sarepta-akseptansetest/Case-mottak-epikrise1_1/Epikrise1-1-case 1.xml",
    ];
    let mut child = spawn(dir.path(), port);
    wait_ready(&base).await;
    let mut answers = Vec::new();
    for f in files {
        let r = post_xml(&base, std::fs::read(kith(f)).unwrap()).await;
        assert_eq!(r.status(), 200, "{f}");
        answers.push(r.bytes().await.unwrap());
    }
    // No grace: the process dies the instant after the last 200.
    signal(&child, "-KILL");
    let _ = child.wait();

    let mut child = spawn(dir.path(), port);
    wait_ready(&base).await;
    let list = common::get_json(&base, "/api/messages").await;
    assert_eq!(list.as_array().unwrap().len(), files.len(), "{list}");
    for (f, first) in files.iter().zip(&answers) {
        let r = post_xml(&base, std::fs::read(kith(f)).unwrap()).await;
        assert_eq!(r.headers()["x-kadgate-duplicate"], "true", "{f}");
        assert_eq!(
            &r.bytes().await.unwrap(),
            first,
            "{f}: same AppRec after the crash"
        );
    }
    signal(&child, "-TERM");
    let _ = child.wait();
}
