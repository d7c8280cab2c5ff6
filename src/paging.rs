//! What every listing checks about the pages a server hands it, whatever the API's paging
//! style (SCIM `startIndex`, JumpCloud `skip`, Okta `Link` headers, Graph `@odata.nextLink`).
//!
//! Nothing a server claims is trusted to size anything: a `totalResults` of 10^12 is refused
//! against [`PageGuard`]'s cap before a single further page is asked for, and the pages still to
//! fetch are never laid out in memory up front. A listing stops at once, with the reason, when
//! a page repeats an object already seen (a server that ignores `startIndex` or `skip`), when a
//! next link was followed already (a cycle), when link-paged pages stop bringing anything, or
//! when more objects arrive than the source's `max_objects`. Memory stays bounded by the pages
//! in flight and one 8-byte hash per object seen.
use std::borrow::Cow;

use rustc_hash::FxHashSet;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Objects one listing may hold unless a source's `max_objects` says otherwise.
pub const DEFAULT_MAX_OBJECTS: u64 = 20_000_000;

/// Empty pages in a row a link-paged listing accepts before it calls the listing stuck (Graph
/// may answer an empty page with a next link while it catches up).
const MAX_EMPTY_PAGES_IN_A_ROW: u32 = 100;

/// The checks of one listing.
#[derive(Debug)]
pub struct PageGuard {
    max_objects: u64,
    objects: u64,
    seen: FxHashSet<u64>,
    followed: FxHashSet<u64>,
    empty_in_a_row: u32,
    /// Whether an object may come back on a later page (Graph delta rounds send a group again
    /// with the next slice of its members).
    repeats_allowed: bool,
}

impl PageGuard {
    /// A guard for one listing that may hold at most `max_objects`.
    pub fn new(max_objects: u64) -> PageGuard {
        PageGuard {
            max_objects,
            objects: 0,
            seen: FxHashSet::default(),
            followed: FxHashSet::default(),
            empty_in_a_row: 0,
            repeats_allowed: false,
        }
    }

    /// A guard for a listing in which one object may legitimately arrive on several pages.
    pub fn allowing_repeats(mut self) -> PageGuard {
        self.repeats_allowed = true;
        self
    }

    /// A count the server claims (`totalResults`, `totalCount`, `x-total-count`): refused when
    /// over the cap, so nothing is ever sized from it.
    pub fn claimed_total(&self, total: u64) -> Result<(), String> {
        if total > self.max_objects {
            return Err(format!(
                "the server claims {total} objects, more than max_objects ({}); raise max_objects for this source if that is real",
                self.max_objects
            ));
        }
        Ok(())
    }

    /// A next link about to be followed: refused when it was followed before (a cycle).
    pub fn follow(&mut self, url: &str) -> Result<(), String> {
        if !self.followed.insert(xxhash_rust::xxh3::xxh3_64(url.as_bytes())) {
            return Err(format!(
                "the next link {url} was followed before: the server's paging goes in a cycle"
            ));
        }
        Ok(())
    }

    /// One page's objects, by id (`None` for an object without one). Refused when an id was
    /// seen on an earlier page or the listing passes the cap. Where repeats are allowed, ids
    /// are only counted.
    pub fn page<S: AsRef<str>>(&mut self, ids: impl IntoIterator<Item = Option<S>>) -> Result<(), String> {
        let mut n = 0u64;
        for id in ids {
            n += 1;
            match id {
                Some(id) if !self.repeats_allowed => {
                    let id = id.as_ref();
                    if !self.seen.insert(xxhash_rust::xxh3::xxh3_64(id.as_bytes())) {
                        return Err(format!(
                            "object '{id}' came back on a later page: the server ignores the page position or repeats pages"
                        ));
                    }
                }
                _ => {}
            }
        }
        self.objects += n;
        if self.objects > self.max_objects {
            return Err(format!(
                "more than max_objects ({}) objects listed; raise max_objects for this source if that is real",
                self.max_objects
            ));
        }
        self.empty_in_a_row = if n == 0 { self.empty_in_a_row + 1 } else { 0 };
        Ok(())
    }

    /// After a page whose listing goes on (a next link, or a total not reached): refused when
    /// the pages stopped bringing anything.
    pub fn progressing(&self) -> Result<(), String> {
        let limit = if self.repeats_allowed { MAX_EMPTY_PAGES_IN_A_ROW } else { 1 };
        if self.empty_in_a_row >= limit {
            return Err(format!(
                "{} empty page(s) in a row with more announced: the listing makes no progress",
                self.empty_in_a_row
            ));
        }
        Ok(())
    }

    /// [`PageGuard::page`] for raw JSON objects, reading each one's id (borrowed from the text
    /// unless it holds an escape).
    pub fn raw_page(&mut self, items: &[Box<RawValue>]) -> Result<(), String> {
        if self.repeats_allowed {
            return self.page(items.iter().map(|_| None::<&str>));
        }
        self.page(items.iter().map(|r| object_id(r)))
    }
}

/// The id of a JSON object as the APIs name it: `id` (SCIM, Okta, Graph; a number is taken as
/// its text), `_id` (JumpCloud v1), or `to.id` (JumpCloud v2 associations).
pub fn object_id(raw: &RawValue) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id<'a> {
        Text(#[serde(borrow)] Cow<'a, str>),
        Number(serde_json::Number),
        Other(serde::de::IgnoredAny),
    }
    #[derive(Deserialize)]
    struct To<'a> {
        #[serde(borrow)]
        id: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Ids<'a> {
        #[serde(rename = "_id", borrow)]
        v1: Option<Cow<'a, str>>,
        #[serde(borrow)]
        id: Option<Id<'a>>,
        #[serde(borrow)]
        to: Option<To<'a>>,
    }
    let ids: Ids = serde_json::from_str(raw.get()).ok()?;
    let id = match ids.id {
        Some(Id::Text(s)) => Some(s),
        Some(Id::Number(n)) => Some(Cow::Owned(n.to_string())),
        _ => None,
    };
    ids.v1.or(id).or(ids.to.and_then(|t| t.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raws(ids: &[&str]) -> Vec<Box<RawValue>> {
        ids.iter()
            .map(|i| RawValue::from_string(format!(r#"{{"id":"{i}","name":"x"}}"#)).unwrap())
            .collect()
    }

    #[test]
    fn a_repeated_page_stops_the_listing() {
        let mut g = PageGuard::new(100);
        g.raw_page(&raws(&["a", "b"])).unwrap();
        let e = g.raw_page(&raws(&["a", "b"])).unwrap_err();
        assert!(e.contains("'a' came back"), "{e}");
    }

    #[test]
    fn repeats_may_be_allowed_but_the_cap_holds() {
        let mut g = PageGuard::new(3).allowing_repeats();
        g.raw_page(&raws(&["a", "b"])).unwrap();
        let e = g.raw_page(&raws(&["a", "b"])).unwrap_err();
        assert!(e.contains("max_objects (3)"), "{e}");
    }

    #[test]
    fn claimed_totals_over_the_cap_are_refused() {
        let g = PageGuard::new(1000);
        assert!(g.claimed_total(1000).is_ok());
        assert!(g.claimed_total(1_000_000_000_000).unwrap_err().contains("claims 1000000000000"));
    }

    #[test]
    fn a_link_followed_twice_is_a_cycle() {
        let mut g = PageGuard::new(10);
        g.follow("https://x/a").unwrap();
        g.follow("https://x/b").unwrap();
        assert!(g.follow("https://x/a").unwrap_err().contains("cycle"));
    }

    #[test]
    fn empty_pages_make_no_progress() {
        let mut g = PageGuard::new(10);
        g.raw_page(&[]).unwrap();
        assert!(g.progressing().is_err());
        let mut lenient = PageGuard::new(10).allowing_repeats();
        lenient.raw_page(&[]).unwrap();
        assert!(lenient.progressing().is_ok());
    }

    #[test]
    fn ids_of_every_vendor_shape() {
        let r = |s: &str| RawValue::from_string(s.to_string()).unwrap();
        assert_eq!(object_id(&r(r#"{"_id":"jc1"}"#)).as_deref(), Some("jc1"));
        assert_eq!(object_id(&r(r#"{"to":{"id":"u9","type":"user"}}"#)).as_deref(), Some("u9"));
        assert_eq!(object_id(&r(r#"{"id":42}"#)).as_deref(), Some("42"));
        assert_eq!(object_id(&r(r#"{"name":"none"}"#)), None);
    }
}
