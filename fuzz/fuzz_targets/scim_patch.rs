//! Any JSON as a PatchOp's Operations applied to a user: applied or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use scimsync_fuzz::scim::patch;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let ops = match v.get("Operations").and_then(Value::as_array) {
        Some(ops) => ops.clone(),
        None => match v {
            Value::Array(ops) => ops,
            other => vec![other],
        },
    };
    let mut user = json!({"id": "u1", "userName": "ann", "active": true, "name": {"givenName": "Ann"},
                          "emails": [{"value": "ann@example.com", "type": "work", "primary": true}],
                          "members": [{"value": "a"}, {"value": "b"}]});
    let _ = patch::apply(&mut user, &ops);
});
