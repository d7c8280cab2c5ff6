//! The group phase of a plan large enough to be planned on two threads (1,024 changed groups or
//! more): its PATCH operations come in the groups' order, each group's together, and every
//! membership finding is in exactly one of them; the whole plan in phase order.

use serde_json::Value;

use crate::support::*;

/// A `gen` store of `users` and `groups` with 5% drift, in `gen/` of a new directory.
fn generated(users: &str, groups: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&scimsync(
        dir.path(),
        &["gen", "--users", users, "--groups", groups, "--drift", "0.05", "--dir", "gen"],
    ));
    dir
}

/// `plan --format json` of the store `generated` made.
fn plan(dir: &tempfile::TempDir) -> Value {
    let out = scimsync(dir.path(), &["--config", "gen/scimsync.toml", "plan", "--format", "json"]);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn thousands_of_changed_groups_are_patched_in_order_each_membership_once() {
    let dir = generated("20000", "3000");
    let plan = plan(&dir);
    // The whole plan, planned in parts (the group changes on a thread of their own, the rest
    // beside them): every phase there is, in phase order, numbered in a row from 1.
    let operations = plan["operations"].as_array().unwrap();
    let phases: Vec<u64> = operations.iter().map(|o| o["phase"].as_u64().unwrap()).collect();
    assert!(phases.windows(2).all(|w| w[0] <= w[1]), "operations out of phase order");
    for (phase, what) in [
        (2, "account creations"),
        (4, "group creations"),
        (5, "group changes"),
        (6, "account updates"),
        (7, "deactivations"),
    ] {
        assert!(
            phases.contains(&phase),
            "no {what} (phase {phase}): a part of the plan is not exercised"
        );
    }
    let all_seqs: Vec<i64> = operations.iter().map(|o| o["seq"].as_i64().unwrap()).collect();
    assert_eq!(all_seqs, (1..=operations.len() as i64).collect::<Vec<_>>());
    let patches: Vec<&Value> = plan["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["action"] == "group.members" && o["method"] == "PATCH")
        .collect();
    let paths: Vec<&str> = patches.iter().map(|o| o["path"].as_str().unwrap()).collect();
    let mut groups = paths.clone();
    groups.dedup();
    assert!(
        groups.len() >= 1024,
        "only {} changed groups: the split is not exercised",
        groups.len()
    );
    assert!(groups.windows(2).all(|w| w[0] < w[1]), "groups out of order or split apart");
    let seqs: Vec<i64> = patches.iter().map(|o| o["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "group operations not numbered in a row");

    // Removals name the account, as their findings do; additions name the IdP user's account
    // (or the user, for one the plan creates), which a finding names by the IdP user.
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for o in &patches {
        let group = o["path"].as_str().unwrap().trim_start_matches("Groups/");
        for op in o["body"]["Operations"].as_array().unwrap() {
            match op["op"].as_str().unwrap() {
                "add" => {
                    for m in op["value"].as_array().unwrap() {
                        // an account's id, or {"$idp_user": id} for a user created earlier in the plan
                        added.push(format!("{group} {}", m["value"]));
                    }
                }
                "remove" => {
                    let member = op["path"].as_str().unwrap().split('"').nth(1).unwrap();
                    removed.push(format!("{group} {member}"));
                }
                other => panic!("unexpected PATCH op {other} in {o}"),
            }
        }
    }
    let findings: Vec<&Value> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "group.members")
        .collect();
    let mut to_remove: Vec<String> = findings
        .iter()
        .filter(|f| f["attribute"] == "remove")
        .map(|f| format!("{} {}", f["sp_id"].as_str().unwrap(), f["old_value"].as_str().unwrap()))
        .collect();
    let adds_found = findings.iter().filter(|f| f["attribute"] == "add").count();
    removed.sort();
    to_remove.sort();
    assert!(
        !removed.is_empty() && removed == to_remove,
        "{} removals PATCHed for {} found",
        removed.len(),
        to_remove.len()
    );
    let patched_adds = added.len();
    added.sort();
    added.dedup();
    assert_eq!(added.len(), patched_adds, "a membership added twice");
    assert!(
        patched_adds > adds_found / 2 && patched_adds <= adds_found,
        "{patched_adds} additions PATCHed for {adds_found} found"
    );
}

/// A first plan of a store this large stores more new links than keep the plan's writer idle
/// (64k), so the planner's inputs are read after the drift queries; the next plan makes no
/// links and reads them beside the membership diff. Both must plan the same operations.
#[test]
fn a_first_plan_and_the_next_read_the_planners_inputs_apart_and_plan_the_same() {
    let dir = generated("80000", "8000");
    let (first, next) = (plan(&dir), plan(&dir));
    let operations = first["operations"].as_array().unwrap();
    for (action, what) in [
        ("user.create", "account creations (the IdP users read whole)"),
        ("group.create", "group creations (the new groups' members)"),
    ] {
        assert!(
            operations.iter().any(|o| o["action"] == action && !o["body"].is_null()),
            "no {what}: the planner's early inputs are not exercised"
        );
    }
    assert_eq!(
        first["operations"], next["operations"],
        "the two plans planned different operations"
    );
}
