//! `scimsync gen --serve`: the generated directory served over SCIM by the emulator. Pulled
//! back over HTTP it plans exactly as the generated store did; apply then converges it.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{assert_ok, scimsync, stdout};

/// Kills the serving process when the test ends, passed or not.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn plan_json(dir: &std::path::Path) -> serde_json::Value {
    let out = scimsync(dir, &["--config", "gen/scimsync.toml", "plan", "--format", "json"]);
    assert_ok(&out);
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for op in v["operations"].as_array_mut().unwrap() {
        op.as_object_mut().unwrap().remove("plan_id");
    }
    serde_json::json!({"findings": v["findings"], "operations": v["operations"]})
}

#[test]
fn a_served_gen_store_pulls_back_to_the_same_plan_and_converges() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scimsync"))
        .args(["gen", "--users", "2000", "--groups", "100", "--dir", "gen", "--serve"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let serving = Serving(child);
    let mut lines = out.lines();
    let line = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.starts_with("serving"))
        .expect("gen --serve says where it serves");
    assert!(line.contains("http://127.0.0.1:"), "{line}");
    let config = std::fs::read_to_string(dir.path().join("gen/scimsync.toml")).unwrap();
    assert!(!config.contains("127.0.0.1:9/"), "the config points at the served URLs:\n{config}");

    // The first plan links the groups it takes over; from the second on, plans are stable.
    plan_json(dir.path());
    let generated = plan_json(dir.path());
    assert!(generated["findings"].as_array().unwrap().len() > 100, "{generated}");

    let pulled = scimsync(dir.path(), &["--config", "gen/scimsync.toml", "pull"]);
    assert_ok(&pulled);
    assert!(stdout(&pulled).contains("2000"), "{}", stdout(&pulled));
    assert_eq!(
        plan_json(dir.path()),
        generated,
        "pulled over HTTP, the directory plans as generated"
    );

    assert_ok(&scimsync(dir.path(), &["--config", "gen/scimsync.toml", "apply", "--yes"]));
    assert_ok(&scimsync(dir.path(), &["--config", "gen/scimsync.toml", "pull"]));
    let after = scimsync(dir.path(), &["--config", "gen/scimsync.toml", "plan", "--detailed-exitcode"]);
    assert_eq!(after.status.code(), Some(0), "converged:\n{}", stdout(&after));
    drop(serving);
}
