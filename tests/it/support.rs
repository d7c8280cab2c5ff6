//! Helpers: a scim2-server per test, the CLI binary, a temp workspace, store queries.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const TOKEN: &str = "it-secret-token-5f2b9c";

/// A scim2-server process serving the given tenants; killed on drop.
pub struct Scim2Server {
    child: Child,
    pub port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Scim2Server {
    pub fn start(tenants: &[&str]) -> Scim2Server {
        Scim2Server::start_with(tenants, &[])
    }

    /// [`Scim2Server::start`] with more of its options (`--service-provider-config FILE`, …).
    pub fn start_with(tenants: &[&str], options: &[&str]) -> Scim2Server {
        let bin = std::env::var("SCIM2_SERVER").unwrap_or_else(|_| "scim2-server".into());
        let port = free_port();
        let mut cmd = Command::new(&bin);
        cmd.args(["--port", &port.to_string(), "--bearer-token", TOKEN]);
        cmd.args(options);
        for t in tenants {
            cmd.args(["--tenant", t]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start scim2-server ('{bin}'): {e}. Run the tests with ./scripts/test.sh, which installs it and sets SCIM2_SERVER."
            )
        });
        let server = Scim2Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = format!("{}/ServiceProviderConfig", server.url(tenants[0]));
        while Instant::now() < deadline {
            if http("GET", &probe, None).0 == 200 {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("scim2-server did not answer on port {port} within 30 s");
    }

    pub fn url(&self, tenant: &str) -> String {
        format!("http://127.0.0.1:{}/{tenant}", self.port)
    }
}

impl Drop for Scim2Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// django-scim2 (PyPI), a second third-party SCIM service provider: Django with the package's
/// views, middleware and model mixins, configured by `tests/django_scim/` (settings only, and
/// the models the package documents), on a free loopback port; killed on drop. With
/// `without_patch` its ServiceProviderConfig announces no PATCH.
pub struct DjangoScim {
    child: Child,
    dir: tempfile::TempDir,
    pub base_url: String,
}

impl DjangoScim {
    pub fn start(without_patch: bool) -> DjangoScim {
        let python = std::env::var("SCIMSYNC_PYTHON").unwrap_or_else(|_| "python3".into());
        let dir = tempfile::tempdir().unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/django_scim");
        std::fs::create_dir_all(dir.path().join("scimapp")).unwrap();
        for f in ["settings.py", "urls.py", "scimapp/__init__.py", "scimapp/models.py"] {
            std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
        }
        let django = |args: &[&str]| {
            let mut c = Command::new(&python);
            c.args(["-m", "django"])
                .args(args)
                .current_dir(dir.path())
                .env("PYTHONPATH", dir.path())
                .env("DJANGO_SETTINGS_MODULE", "settings")
                .env("SCIM_DB", dir.path().join("db.sqlite3"));
            if without_patch {
                c.env("SCIM_NO_PATCH", "1");
            }
            c
        };
        for step in [&["makemigrations", "scimapp"][..], &["migrate"][..]] {
            let out = django(step).output().unwrap_or_else(|e| panic!("cannot run {python} -m django: {e}. Run the tests with ./scripts/test.sh, which installs django-scim2 and sets SCIMSYNC_PYTHON."));
            assert!(out.status.success(), "django {step:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("requests.log")).unwrap();
        let child = django(&["runserver", &format!("127.0.0.1:{port}"), "--noreload"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = DjangoScim {
            child,
            dir,
            base_url: format!("http://127.0.0.1:{port}/scim/v2"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if http("GET", &format!("{}/ServiceProviderConfig", server.base_url), None).0 == 200 {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("django-scim2 did not answer on port {port} within 60 s");
    }

    /// The request lines the server logged ("PATCH /scim/v2/Users/3 HTTP/1.1", …).
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("requests.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split('"').nth(1).map(str::to_string))
            .collect()
    }
}

impl Drop for DjangoScim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One blocking HTTP request with the test token; returns the status and the JSON body (Null if none).
pub fn http(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.header("content-type", "application/scim+json").body(b.to_string());
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    })
}

/// The project's emulator on its own runtime thread, for tests that drive the CLI against it.
pub struct EmulatorHost {
    pub emulator: scimsync_emulator::Emulator,
    _rt: tokio::runtime::Runtime,
}

impl EmulatorHost {
    pub fn start(dir: scimsync_emulator::Directory) -> EmulatorHost {
        EmulatorHost::start_as(dir, scimsync_emulator::Vendor::Generic, false)
    }

    /// An emulator that behaves like `vendor`'s app.
    pub fn start_as(dir: scimsync_emulator::Directory, vendor: scimsync_emulator::Vendor, pending_until_login: bool) -> EmulatorHost {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let emulator = rt
            .block_on(scimsync_emulator::Emulator::start_as(dir, Some(TOKEN), vendor, pending_until_login))
            .unwrap();
        EmulatorHost { emulator, _rt: rt }
    }
}

/// POST `ops` to a tenant's /Bulk (scim2-server allows 1000 operations a request); returns the
/// ids of created resources, in order.
pub fn bulk_create(base: &str, path: &str, bodies: &[Value]) -> Vec<String> {
    let mut ids = Vec::with_capacity(bodies.len());
    for chunk in bodies.chunks(1000) {
        let ops: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, d)| json!({"method": "POST", "bulkId": format!("b{i}"), "path": path, "data": d}))
            .collect();
        let (status, resp) = http(
            "POST",
            &format!("{base}/Bulk"),
            Some(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})),
        );
        assert_eq!(status, 200, "bulk create failed: {resp}");
        for op in resp["Operations"].as_array().unwrap() {
            assert_eq!(op["status"], "201", "bulk op failed: {op}");
            ids.push(op["location"].as_str().unwrap().rsplit('/').next().unwrap().to_string());
        }
    }
    ids
}

/// A temp directory with a config file, and the CLI run inside it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(config: &str) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("scimsync.toml"), config).unwrap();
        Workspace { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn store(&self) -> PathBuf {
        self.path("scimsync.db")
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        scimsync(self.dir.path(), args)
    }

    /// Start the binary in the workspace (the test token set, output discarded) and leave it
    /// running: for what happens while a command is under way.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args(args)
            .current_dir(self.dir.path())
            .env("IT_TOKEN", TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(self.store(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
    }
}

/// Run the real binary in `dir` with the test token in `IT_TOKEN` and fast retries.
pub fn scimsync(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(args)
        .current_dir(dir)
        .env("IT_TOKEN", TOKEN)
        .env("SCIMSYNC_RETRY_BASE_MS", "5")
        .env_remove("SCIMSYNC_LOG")
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// One row of a query as strings (NULL as "NULL"), for whole-table comparisons.
pub fn rows(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<String>> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => "NULL".to_string(),
                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                rusqlite::types::ValueRef::Real(v) => v.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                rusqlite::types::ValueRef::Blob(_) => "<blob>".to_string(),
            })
            .collect())
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

pub fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}
