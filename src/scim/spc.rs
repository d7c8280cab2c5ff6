//! RFC 7644 §4 / RFC 7643 §5: ServiceProviderConfig, read once per connection to learn what the
//! SP supports. Unknown or missing sections default to "not supported".
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Supported {
    #[serde(default)]
    pub supported: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct FilterSupport {
    #[serde(default)]
    pub supported: bool,
    #[serde(rename = "maxResults", default)]
    pub max_results: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct BulkSupport {
    #[serde(default)]
    pub supported: bool,
    #[serde(rename = "maxOperations", default)]
    pub max_operations: Option<u64>,
    #[serde(rename = "maxPayloadSize", default)]
    pub max_payload_size: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ServiceProviderConfig {
    #[serde(default)]
    pub patch: Supported,
    #[serde(default)]
    pub bulk: BulkSupport,
    #[serde(default)]
    pub filter: FilterSupport,
    #[serde(default)]
    pub sort: Supported,
    #[serde(default)]
    pub etag: Supported,
    #[serde(rename = "changePassword", default)]
    pub change_password: Supported,
}

impl ServiceProviderConfig {
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|e| format!("not a ServiceProviderConfig: {e}"))
    }

    /// The page size to ask for: the configured one, capped by `filter.maxResults`.
    pub fn page_size(&self, wanted: u32) -> u32 {
        match self.filter.max_results {
            Some(max) if max > 0 && (max as u32) < wanted => max as u32,
            _ => wanted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7643_8_5_example() {
        let spc = ServiceProviderConfig::parse(include_bytes!("../../tests/fixtures/scim/rfc7643-8.5-spc.json")).unwrap();
        assert!(spc.patch.supported && spc.bulk.supported && spc.filter.supported && spc.etag.supported);
        assert!(!spc.sort.supported);
        assert_eq!(spc.filter.max_results, Some(200));
        assert_eq!(spc.page_size(1000), 200);
        assert_eq!(spc.page_size(100), 100);
    }

    #[test]
    fn empty_config_supports_nothing() {
        let spc = ServiceProviderConfig::parse(b"{}").unwrap();
        assert!(!spc.patch.supported);
        assert_eq!(spc.page_size(1000), 1000);
    }
}
