//! Any string as a filter value: the escaped form is a JSON string that reads back as exactly
//! that value, so quotes, backslashes, `and`/`or` and control characters cannot change a filter.
#![no_main]
use libfuzzer_sys::fuzz_target;
use scimsync_fuzz::scim::filter;

fuzz_target!(|value: &str| {
    let quoted = filter::json_string(value);
    let back: String = serde_json::from_str(&quoted).expect("json_string gives a JSON string");
    assert_eq!(back, value);
    let f = filter::eq("userName", value);
    assert_eq!(f, format!("userName eq {quoted}"));
});
