//! Bad config files give errors that name the file, the section and the key.
use crate::support::*;

fn fails_with(config: &str, args: &[&str], needles: &[&str]) {
    let ws = Workspace::new(config);
    let out = ws.cli(args);
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    let err = stderr(&out);
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
}

#[test]
fn unknown_key() {
    fails_with(
        "[idp.corp]\nkind = \"scim\"\nbase_url = \"http://127.0.0.1:1\"\ntokenenv = \"X\"\n",
        &["pull"],
        &["scimsync.toml", "tokenenv", "line 4"],
    );
}

#[test]
fn unknown_kind() {
    fails_with("[idp.corp]\nkind = \"ldap\"\n", &["pull"], &["scimsync.toml", "ldap", "jumpcloud"]);
}

#[test]
fn app_names_a_missing_idp() {
    fails_with(
        "[idp.corp]\nkind = \"file\"\npath = \"d.json\"\n[app.x]\nidp = \"other\"\nbase_url = \"http://127.0.0.1:1\"\ngroups = [\"g\"]\n",
        &["pull"],
        &["[app.x] key 'idp'", "other", "known: corp"],
    );
}

#[test]
fn bad_url_and_bad_guard() {
    fails_with(
        "[idp.corp]\nkind = \"scim\"\nbase_url = \"ftp://x\"\n",
        &["pull"],
        &["[idp.corp] key 'base_url'", "ftp"],
    );
    fails_with(
        "[idp.corp]\nkind = \"file\"\npath = \"d.json\"\n[app.x]\nidp = \"corp\"\nbase_url = \"http://127.0.0.1:1\"\ngroups = [\"g\"]\nmax_deactivations = \"lots\"\n",
        &["pull"],
        &["[app.x] key 'max_deactivations'", "lots"],
    );
}

#[test]
fn missing_token_variable_is_named_not_guessed() {
    fails_with(
        "[idp.corp]\nkind = \"scim\"\nbase_url = \"http://127.0.0.1:1\"\ntoken_env = \"SCIMSYNC_IT_UNSET_TOKEN\"\n",
        &["pull"],
        &["idp.corp: token: environment variable SCIMSYNC_IT_UNSET_TOKEN (token_env) is not set"],
    );
}

#[test]
fn missing_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = scimsync(dir.path(), &["pull"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read config file 'scimsync.toml'"), "{}", stderr(&out));
}

#[test]
fn init_writes_a_config_that_loads_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&scimsync(dir.path(), &["init"]));
    let again = scimsync(dir.path(), &["init"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists"));
    // status loads (and validates) the config before it looks for the store.
    let out = scimsync(dir.path(), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no store at"), "{}", stderr(&out));
}

#[test]
fn every_command_names_an_unknown_app_alike() {
    let config = "[idp.corp]\nkind = \"scim\"\nbase_url = \"http://127.0.0.1:1\"\n\n\
                  [app.wiki]\nidp = \"corp\"\nbase_url = \"http://127.0.0.1:1\"\ngroups = [\"Staff\"]\n";
    for args in [
        &["pull", "--app", "wikk"][..],
        &["plan", "--app", "wikk"],
        &["reconcile", "--app", "wikk"],
        &["reconcile", "--app", "wikk", "--user", "ann"],
        &["import", "--app", "wikk"],
    ] {
        fails_with(config, args, &["no app 'wikk' in", "scimsync.toml", "(known: wiki)"]);
    }
}
