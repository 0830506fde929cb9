//! A PostgreSQL server for the store tests: a throwaway cluster (initdb into a temporary folder,
//! `pg_ctl start` on a free loopback port with its socket in that folder, stopped when the last
//! test using it is done), or the server `KADGATE_PG_URL` names. Every test gets a schema of its
//! own, so tests run side by side on one server.
//!
//! PostgreSQL refuses to run as root: as root the cluster runs as the `postgres` user (or `nobody`
//! when there is none) through `runuser`. The binaries are looked up in `KADGATE_PG_BIN`, then the
//! newest `/usr/lib/postgresql/*/bin`, then `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// One test's database: `url` connects with `search_path` set to the test's own schema.
pub struct PgDb {
    pub url: String,
    /// The server without the schema option (for creating or inspecting schemas).
    pub admin_url: String,
    pub schema: String,
    /// `None` for a server named by `KADGATE_PG_URL`.
    server: Option<Arc<Cluster>>,
    /// On a cluster of its own.
    private: bool,
}

impl PgDb {
    /// True on a throwaway cluster no other test uses (see [`private_database`]).
    pub fn alone(&self) -> bool {
        self.private
    }

    /// A plain client on the test's schema (for checks the store API does not offer).
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

impl Drop for PgDb {
    /// On a shared server, drop the test's schema (a throwaway cluster is removed whole).
    fn drop(&mut self) {
        if self.server.is_some() {
            return;
        }
        let admin = self.admin_url.clone();
        let schema = self.schema.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let client = connect(&admin).await;
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await;
            });
        })
        .join();
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL server");
    tokio::spawn(conn);
    client
}

/// A fresh schema on the test server (the shared throwaway cluster, or `KADGATE_PG_URL`).
pub async fn database() -> PgDb {
    schema_on(external().map_or_else(|| Server::Shared(Cluster::shared()), Server::External)).await
}

/// A fresh schema on a throwaway cluster of its own, with no other test's traffic (for
/// measurements); on `KADGATE_PG_URL` when set.
pub async fn private_database() -> PgDb {
    schema_on(external().map_or_else(
        || Server::Private(Arc::new(Cluster::start())),
        Server::External,
    ))
    .await
}

fn external() -> Option<String> {
    std::env::var("KADGATE_PG_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
}

enum Server {
    External(String),
    Shared(Arc<Cluster>),
    Private(Arc<Cluster>),
}

async fn schema_on(server: Server) -> PgDb {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (admin_url, cluster, private) = match server {
        Server::External(url) => (url, None, false),
        Server::Shared(c) => (c.url(), Some(c), false),
        Server::Private(c) => (c.url(), Some(c), true),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let schema = format!(
        "kadgate_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    connect(&admin_url)
        .await
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create the test schema");
    PgDb {
        url: with_search_path(&admin_url, &schema),
        admin_url,
        schema,
        server: cluster,
        private,
    }
}

/// `url` with `search_path` set to `schema`, in the URL or the key=value form.
fn with_search_path(url: &str, schema: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options=-csearch_path%3D{schema}")
    } else {
        format!("{url} options='-csearch_path={schema}'")
    }
}

/// A throwaway cluster, shared by the tests running at the same time.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<String>,
    port: u16,
}

impl Cluster {
    /// The running cluster, or a new one when no test holds it.
    fn shared() -> Arc<Cluster> {
        static CURRENT: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());
        let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cluster) = current.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(Cluster::start());
        *current = Arc::downgrade(&cluster);
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start() -> Cluster {
        let bin = bin_dir();
        let run_as = run_as();
        let dir = tempfile::Builder::new()
            .prefix("kadgate-pg-")
            .tempdir()
            .expect("temporary folder for the cluster");
        if let Some(user) = &run_as {
            let status = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown of the cluster folder to {user}");
        }
        let data = dir.path().join("data");
        run(
            &run_as,
            &bin.join("initdb"),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-locale".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        // A port that was free a moment ago; try again when another process took it meanwhile.
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 \
                 -c fsync=on -c synchronous_commit=on",
                dir.path().display()
            );
            let ok = run_status(
                &run_as,
                &bin.join("pg_ctl"),
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-l".as_ref(),
                    dir.path().join("server.log").as_os_str(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "-o".as_ref(),
                    options.as_ref(),
                    "start".as_ref(),
                ],
            );
            if ok {
                return Cluster {
                    dir,
                    bin,
                    run_as,
                    port,
                };
            }
        }
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        panic!("the test PostgreSQL server did not start:\n{log}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        run_status(
            &self.run_as,
            &self.bin.join("pg_ctl"),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Where `initdb` and `pg_ctl` are.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KADGATE_PG_BIN").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
        .expect(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install the postgresql \
             package, or set KADGATE_PG_BIN, or KADGATE_PG_URL to use a running server",
        )
}

/// The user to run the cluster as when this process is root.
fn run_as() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return None;
    }
    let has_postgres = Command::new("id")
        .arg("-u")
        .arg("postgres")
        .output()
        .is_ok_and(|o| o.status.success());
    Some(if has_postgres { "postgres" } else { "nobody" }.to_owned())
}

fn command(run_as: &Option<String>, program: &Path, args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.arg("-u").arg(user).arg("--").arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.args(args).current_dir("/");
    cmd
}

fn run(run_as: &Option<String>, program: &Path, args: &[&std::ffi::OsStr]) {
    let out = command(run_as, program, args)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_status(run_as: &Option<String>, program: &Path, args: &[&std::ffi::OsStr]) -> bool {
    command(run_as, program, args)
        .output()
        .is_ok_and(|o| o.status.success())
}
