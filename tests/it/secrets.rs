//! Secrets never leave their env vars: after runs with failures at the most verbose log level,
//! none of the IdP keys (JumpCloud API key, Okta token, Entra client secret and the access
//! token Graph issued), nor the apps' tokens, appear in any output, the store, its WAL, a plan
//! file, an HTML report or `--help`.
use axum::http::Method;
use scimsync_emulator::{Directory, Fault, IdpDirectory, IdpFake, IdpVendor};

use crate::support::*;

const JC: &str = "jc-secret-1111aaaa";
const OKTA: &str = "okta-secret-2222bbbb";
const ENTRA: &str = "entra-secret-3333cccc";

#[test]
fn no_secret_in_outputs_store_plan_files_reports_or_help() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut dir = IdpDirectory::generate(40, 2);
    dir.bind("app-1", "g00000");
    let jc = rt
        .block_on(IdpFake::start(IdpVendor::JumpCloud, IdpDirectory::generate(40, 2), JC, None))
        .unwrap();
    let okta = rt
        .block_on(IdpFake::start(IdpVendor::Okta, IdpDirectory::generate(40, 2), OKTA, None))
        .unwrap();
    let entra = rt.block_on(IdpFake::start(IdpVendor::Entra, dir, ENTRA, Some("client-1"))).unwrap();
    let apps: Vec<EmulatorHost> = (0..3).map(|_| EmulatorHost::start(Directory::default())).collect();
    let config = format!(
        "[idp.jc]\nkind = \"jumpcloud\"\nbase_url = \"{}\"\ntoken_env = \"JC_KEY\"\n\n\
         [idp.okta]\nkind = \"okta\"\nbase_url = \"{}\"\ntoken_env = \"OKTA_TOKEN\"\n\n\
         [idp.entra]\nkind = \"entra\"\nbase_url = \"{}\"\ntoken_env = \"ENTRA_SECRET\"\nclient_id = \"client-1\"\ntoken_url = \"{}\"\n\n\
         [app.a]\nidp = \"jc\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Group 0\"]\n\n\
         [app.b]\nidp = \"okta\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\ngroups = [\"Group 1\"]\n\n\
         [app.c]\nidp = \"entra\"\nbase_url = \"{}\"\ntoken_env = \"IT_TOKEN\"\nidp_app_id = \"app-1\"\n",
        jc.base_url,
        okta.base_url,
        entra.base_url,
        entra.token_url,
        apps[0].emulator.base_url,
        apps[1].emulator.base_url,
        apps[2].emulator.base_url
    );
    let ws = Workspace::new(&config);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_scimsync"))
            .args(args)
            .current_dir(ws.dir.path())
            .env("IT_TOKEN", TOKEN)
            .env("JC_KEY", JC)
            .env("OKTA_TOKEN", OKTA)
            .env("ENTRA_SECRET", ENTRA)
            .env("SCIMSYNC_RETRY_BASE_MS", "5")
            .env("SCIMSYNC_LOG", "trace")
            .output()
            .unwrap()
    };
    let mut outputs = Vec::new();
    // Failures on every side: an IdP page that keeps failing, an app that refuses a create.
    okta.add_fault(Fault {
        path_suffix: Some("/api/v1/groups".into()),
        status: 503,
        ..Default::default()
    });
    outputs.push(run(&["-vvv", "pull"]));
    apps[0].emulator.add_fault(Fault {
        method: Some(Method::POST),
        path_suffix: Some("/Users".into()),
        status: 500,
        times: Some(3),
        ..Default::default()
    });
    outputs.push(run(&["-vvv", "plan", "--out", "plan.json"]));
    outputs.push(run(&["-vvv", "apply", "--dry-run"]));
    outputs.push(run(&["-vvv", "apply", "--yes"]));
    outputs.push(run(&["-vvv", "status"]));
    outputs.push(run(&["-vvv", "events"]));
    outputs.push(run(&["-vvv", "sql", "SELECT * FROM sources"]));
    outputs.push(run(&["-vvv", "report", "--html", "audit.html"]));
    outputs.push(run(&["-vvv", "import", "--app", "c", "--format", "json"]));
    outputs.push(run(&["--help"]));
    for sub in ["pull", "plan", "apply", "reconcile", "import", "sql", "init"] {
        outputs.push(run(&[sub, "--help"]));
    }
    // A wrong Entra secret: the refusal is reported, the secret is not.
    let wrong = std::process::Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(["-vvv", "pull", "--app", "c"])
        .current_dir(ws.dir.path())
        .env("IT_TOKEN", TOKEN)
        .env("ENTRA_SECRET", "wrong-secret-9999dddd")
        .env("SCIMSYNC_LOG", "trace")
        .output()
        .unwrap();
    assert!(stderr(&wrong).contains("token request refused"), "{}", stderr(&wrong));
    outputs.push(wrong);

    assert!(outputs.iter().any(|o| o.status.code() == Some(1)), "some runs failed, as intended");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, o) in outputs.iter().enumerate() {
        files.push((format!("run {i} stdout"), o.stdout.clone()));
        files.push((format!("run {i} stderr"), o.stderr.clone()));
    }
    for f in ["scimsync.db", "scimsync.db-wal", "plan.json", "audit.html", "scimsync.toml"] {
        files.push((f.to_string(), std::fs::read(ws.path(f)).unwrap_or_default()));
    }
    assert!(
        files.iter().any(|(n, b)| n == "plan.json" && !b.is_empty()),
        "plan --out wrote a file"
    );
    for secret in [JC, OKTA, ENTRA, "wrong-secret-9999dddd", TOKEN, "graph-access-"] {
        for (name, bytes) in &files {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "secret {secret:?} found in {name}"
            );
        }
    }
}
