//! RFC 7644 §4 / RFC 7643 §5: ServiceProviderConfig, read once per connection to learn what the
//! SP supports. Unknown or missing sections default to "not supported".
use serde::{Deserialize, Serialize};

/// A feature the SP says it supports or not.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Supported {
    /// Whether it does.
    #[serde(default)]
    pub supported: bool,
}

/// `filter`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct FilterSupport {
    /// Whether it does.
    #[serde(default)]
    pub supported: bool,
    /// The most results a filtered list returns.
    #[serde(rename = "maxResults", default)]
    pub max_results: Option<u64>,
}

/// `bulk`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct BulkSupport {
    /// Whether it does.
    #[serde(default)]
    pub supported: bool,
    /// The most operations per request.
    #[serde(rename = "maxOperations", default)]
    pub max_operations: Option<u64>,
    /// The largest request.
    #[serde(rename = "maxPayloadSize", default)]
    pub max_payload_size: Option<u64>,
}

/// `/ServiceProviderConfig` (RFC 7643 §5): what the SP supports.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct ServiceProviderConfig {
    /// PATCH.
    #[serde(default)]
    pub patch: Supported,
    /// Bulk.
    #[serde(default)]
    pub bulk: BulkSupport,
    /// Filters.
    #[serde(default)]
    pub filter: FilterSupport,
    /// Sorting.
    #[serde(default)]
    pub sort: Supported,
    /// ETags and `If-Match`.
    #[serde(default)]
    pub etag: Supported,
    /// Password changes.
    #[serde(rename = "changePassword", default)]
    pub change_password: Supported,
}

impl ServiceProviderConfig {
    /// Parse the SP's answer; the error says what is wrong.
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
