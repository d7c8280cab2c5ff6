//! RFC 7644 §3.4.2: ListResponse pages and the rules for walking them.
//!
//! `startIndex` is 1-based; the client advances by the number of resources a page returned
//! (never by `count`, since an SP may return fewer) and stops at `totalResults`. A
//! `totalResults` that changes mid-scan, or a scan that ends short of it, is an error: the
//! mirror must be complete or not written at all.
use serde::Deserialize;
use serde_json::value::RawValue;

/// One page of a ListResponse (RFC 7644 §3.4.2).
#[derive(Debug, Deserialize)]
pub struct ListPage {
    /// `totalResults`.
    #[serde(rename = "totalResults", alias = "totalresults", alias = "TotalResults")]
    pub total_results: Option<u64>,
    /// `startIndex`.
    #[serde(rename = "startIndex", alias = "startindex")]
    pub start_index: Option<u64>,
    /// `itemsPerPage`.
    #[serde(rename = "itemsPerPage", alias = "itemsperpage")]
    pub items_per_page: Option<u64>,
    /// Tolerated absent when `totalResults` is 0 (§3.4.2).
    #[serde(rename = "Resources", alias = "resources", default)]
    pub resources: Vec<Box<RawValue>>,
}

impl ListPage {
    /// Parse a page; the error says what is missing or wrong.
    pub fn parse(body: &[u8]) -> Result<ListPage, String> {
        let page: ListPage = serde_json::from_slice(body).map_err(|e| format!("not a SCIM ListResponse: {e}"))?;
        if page.total_results.is_none() {
            return Err("ListResponse has no totalResults (RFC 7644 §3.4.2 requires it)".into());
        }
        Ok(page)
    }
}

/// The state of a scan over one collection, fed page by page.
#[derive(Debug, Clone)]
pub struct Scan {
    total: Option<u64>,
    /// Resources received so far.
    pub collected: u64,
    /// Pages received so far.
    pub pages: u64,
}

impl Default for Scan {
    fn default() -> Self {
        Self::new()
    }
}

impl Scan {
    /// A scan before its first page.
    pub fn new() -> Scan {
        Scan {
            total: None,
            collected: 0,
            pages: 0,
        }
    }

    /// The total the first page announced.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Account for one page; the error says what is inconsistent.
    pub fn accept(&mut self, page: &ListPage) -> Result<(), String> {
        self.pages += 1;
        let total = page.total_results.unwrap_or(0);
        match self.total {
            None => self.total = Some(total),
            Some(t) if t != total => {
                return Err(format!(
                    "totalResults changed mid-scan from {t} to {total}; the collection changed while it was read"
                ));
            }
            Some(_) => {}
        }
        self.collected += page.resources.len() as u64;
        if self.collected > total {
            return Err(format!("received {} resources, more than totalResults {total}", self.collected));
        }
        Ok(())
    }

    /// The next `startIndex`, or `None` when the scan is complete.
    pub fn next_start(&self) -> Option<u64> {
        let total = self.total?;
        (self.collected < total).then_some(self.collected + 1)
    }

    /// Called when a page came back empty before the end: a short tally.
    pub fn short_error(&self) -> String {
        format!(
            "scan ended after {} of {} resources (an empty page before totalResults was reached)",
            self.collected,
            self.total.unwrap_or(0)
        )
    }
}

/// The `startIndex` values to fetch after a first page, when pages are fetched concurrently:
/// every `page_size`-th index up to `total`, produced as they are asked for (a server's
/// `totalResults` is never a size to allocate). Each page must then return exactly `page_size`
/// resources (except the last), or the scan falls back to sequential paging.
pub fn planned_starts(total: u64, page_size: u64, first_page_len: u64) -> impl Iterator<Item = u64> {
    let step = if first_page_len == 0 || page_size == 0 { 0 } else { page_size };
    let first = first_page_len + 1;
    (0..)
        .map_while(move |i: u64| i.checked_mul(step).and_then(|o| o.checked_add(first)))
        .take_while(move |s| step != 0 && *s <= total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(total: u64, n: usize) -> ListPage {
        let res: Vec<String> = (0..n).map(|i| format!(r#"{{"id":"{i}"}}"#)).collect();
        ListPage::parse(format!(r#"{{"totalResults":{total},"Resources":[{}]}}"#, res.join(",")).as_bytes()).unwrap()
    }

    #[test]
    fn rfc7644_3_4_2_list_response_example() {
        let body = include_bytes!("../../tests/fixtures/scim/rfc7644-3.4.2-list-users.json");
        let p = ListPage::parse(body).unwrap();
        assert_eq!(p.total_results, Some(2));
        assert_eq!(p.resources.len(), 2);
    }

    #[test]
    fn zero_results_without_resources_is_fine() {
        let p = ListPage::parse(br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0}"#).unwrap();
        assert!(p.resources.is_empty());
        let mut s = Scan::new();
        s.accept(&p).unwrap();
        assert_eq!(s.next_start(), None);
    }

    #[test]
    fn missing_total_results_is_an_error() {
        assert!(ListPage::parse(br#"{"Resources":[]}"#).unwrap_err().contains("totalResults"));
    }

    #[test]
    fn advances_by_the_number_returned_not_by_count() {
        let mut s = Scan::new();
        s.accept(&page(5, 2)).unwrap();
        assert_eq!(s.next_start(), Some(3));
        s.accept(&page(5, 3)).unwrap();
        assert_eq!(s.next_start(), None);
    }

    #[test]
    fn changing_total_is_an_error() {
        let mut s = Scan::new();
        s.accept(&page(5, 2)).unwrap();
        assert!(s.accept(&page(6, 2)).unwrap_err().contains("changed mid-scan"));
    }

    #[test]
    fn too_many_resources_is_an_error() {
        let mut s = Scan::new();
        assert!(s.accept(&page(1, 2)).is_err());
    }

    #[test]
    fn planned_starts_cover_the_rest() {
        let starts = |t, p, f| planned_starts(t, p, f).collect::<Vec<u64>>();
        assert_eq!(starts(10, 3, 3), vec![4, 7, 10]);
        assert_eq!(starts(3, 3, 3), Vec::<u64>::new());
        assert_eq!(starts(10, 3, 0), Vec::<u64>::new());
        // A lying total is never laid out: the first few of 10^12 starts, lazily.
        assert_eq!(
            planned_starts(1_000_000_000_000, 100, 100).take(2).collect::<Vec<_>>(),
            vec![101, 201]
        );
    }
}
