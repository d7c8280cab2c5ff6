//! Any bytes as an SP's answer: ListResponse pages, RFC 7644 error bodies, Users, Groups and
//! ServiceProviderConfig are parsed or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use scimsync_fuzz::scim::{error::ScimErrorBody, list::ListPage, resource, spc::ServiceProviderConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = ListPage::parse(data) {
        for r in &page.resources {
            let _ = resource::parse_user(r.get());
            let _ = resource::parse_group(r.get());
        }
    }
    if let Some(e) = ScimErrorBody::parse(data) {
        let _ = e.summary();
    }
    if let Ok(spc) = ServiceProviderConfig::parse(data) {
        let _ = spc.page_size(1000);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = resource::parse_user(text);
        let _ = resource::parse_group(text);
    }
});
