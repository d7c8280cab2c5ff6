//! What a SCIM client does after an app answered a write, decided without I/O: from what was
//! sent and the answer's status and body to the next step. `apply` carries the steps out (the
//! lookups, re-reads and journal); every case is tested here without a server.
use std::collections::BTreeSet;

use serde_json::Value;

/// The write that was answered.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    /// A POST that creates a resource (user or group).
    pub creates: bool,
    /// A write that takes the resource away or makes it inactive (DELETE, deactivation).
    pub removes: bool,
    /// A read-modify-write PUT (the resource was read just before; reading it again is the
    /// way to retry after a 412).
    pub put: bool,
    /// The request carried `If-Match` (a version the app returned).
    pub conditional: bool,
    /// The body sent.
    pub sent: Option<&'a Value>,
    /// The app creates accounts that stay pending until their first login and cannot be
    /// looked up meanwhile (Whimsical): a create it accepted is done even without an id.
    pub created_pending: bool,
    /// This is the first try of the write (a 412 is retried once).
    pub first_try: bool,
}

/// The next step after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The write took. `id`: the created resource's, for a create whose answer names it (RFC
    /// 7644 §3.3: the answer to a create is the resource as created).
    Done {
        /// The created resource's id.
        id: Option<String>,
    },
    /// The app accepted a create but its answer names no id (empty, truncated, not JSON):
    /// whether the resource exists is unknown until it is looked up by its key.
    LookUpCreated,
    /// 409 to a create (RFC 7644 §3.3, `uniqueness`): a resource with its key exists; look it
    /// up, and link it only if it carries the key asked for.
    LookUpExisting,
    /// 404 to a removal (RFC 7644 §3.6): the resource is already gone, which is what was asked.
    AlreadyGone,
    /// 412 (RFC 7644 §3.14): the resource changed since it was read. Read it again and retry,
    /// with its new version as `If-Match`.
    ReadAgainAndRetry,
    /// A 2xx whose answer (the resource as written, RFC 7644 §3.5.1) lacks `missing` of the
    /// members the write sent: the app did not take them.
    MembersIgnored {
        /// The created resource's id.
        id: Option<String>,
        /// How many of the members sent the answer lacks.
        missing: usize,
    },
    /// Anything else: the write failed with this status.
    Fail,
}

/// The step after `status` and `body` answered `write`.
pub fn next(write: &Write, status: u16, body: &[u8]) -> Next {
    if (200..300).contains(&status) {
        let id = if write.creates { resource_id(body) } else { None };
        if write.creates && id.is_none() && !write.created_pending {
            return Next::LookUpCreated;
        }
        return match ignored_members(write.sent, body) {
            Some(missing) => Next::MembersIgnored { id, missing },
            None => Next::Done { id },
        };
    }
    match status {
        409 if write.creates => Next::LookUpExisting,
        404 if write.removes => Next::AlreadyGone,
        412 if (write.put && write.first_try) || !write.conditional => Next::ReadAgainAndRetry,
        _ => Next::Fail,
    }
}

/// The `id` of a resource answer.
fn resource_id(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("id").and_then(Value::as_str).map(str::to_string)
}

/// How many of the members `sent` names the app's answer leaves out, when the answer lists
/// members at all (a server may leave `members` out of its answers; that says nothing).
pub fn ignored_members(sent: Option<&Value>, answer: &[u8]) -> Option<usize> {
    let values = |v: &Value| -> Option<BTreeSet<String>> {
        v.get("members")?.as_array().map(|ms| {
            ms.iter()
                .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
    };
    let sent = values(sent?)?;
    let answered = values(&serde_json::from_slice::<Value>(answer).ok()?)?;
    let missing = sent.difference(&answered).count();
    (missing > 0).then_some(missing)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn write() -> Write<'static> {
        Write {
            creates: false,
            removes: false,
            put: false,
            conditional: false,
            sent: None,
            created_pending: false,
            first_try: true,
        }
    }

    #[test]
    fn a_create_is_done_with_the_id_it_answers_and_looked_up_without_one() {
        let create = Write { creates: true, ..write() };
        assert_eq!(next(&create, 201, br#"{"id":"a1"}"#), Next::Done { id: Some("a1".into()) });
        for answer in [&b""[..], b"{\"userName\":", b"{}", b"<html>"] {
            assert_eq!(next(&create, 201, answer), Next::LookUpCreated, "{answer:?}");
        }
        // Pending until login: never looked up, never sent twice.
        let pending = Write {
            created_pending: true,
            ..create
        };
        assert_eq!(next(&pending, 201, b""), Next::Done { id: None });
        // Not a create: no id is read, none needed.
        assert_eq!(next(&write(), 200, b""), Next::Done { id: None });
        assert_eq!(next(&write(), 204, b""), Next::Done { id: None });
    }

    #[test]
    fn conflicts_gone_resources_and_versions() {
        let create = Write { creates: true, ..write() };
        assert_eq!(next(&create, 409, br#"{"scimType":"uniqueness"}"#), Next::LookUpExisting);
        assert_eq!(next(&write(), 409, b""), Next::Fail, "a 409 to an update is no lookup");
        let remove = Write { removes: true, ..write() };
        assert_eq!(next(&remove, 404, b""), Next::AlreadyGone);
        assert_eq!(next(&write(), 404, b""), Next::Fail, "a 404 to an update is a failure");
        // 412: read again and retry once with the version; a conditional write refused again
        // fails, and a PUT (which re-reads before it sends) is retried once.
        assert_eq!(next(&write(), 412, b""), Next::ReadAgainAndRetry);
        let conditional = Write {
            conditional: true,
            ..write()
        };
        assert_eq!(next(&conditional, 412, b""), Next::Fail);
        let put = Write {
            put: true,
            conditional: true,
            ..write()
        };
        assert_eq!(next(&put, 412, b""), Next::ReadAgainAndRetry);
        assert_eq!(next(&Write { first_try: false, ..put }, 412, b""), Next::Fail);
        for status in [400, 401, 403, 500, 503] {
            assert_eq!(next(&write(), status, b""), Next::Fail, "{status}");
        }
    }

    #[test]
    fn members_an_answer_leaves_out_are_counted() {
        let sent = json!({"displayName": "Eng", "members": [{"value": "1"}, {"value": "2"}]});
        assert_eq!(ignored_members(Some(&sent), br#"{"id":"g","members":[]}"#), Some(2));
        assert_eq!(
            ignored_members(Some(&sent), br#"{"id":"g","members":[{"value":"2"},{"value":"1"}]}"#),
            None
        );
        assert_eq!(
            ignored_members(Some(&sent), br#"{"id":"g"}"#),
            None,
            "no members in the answer says nothing"
        );
        assert_eq!(ignored_members(Some(&sent), b""), None);
        assert_eq!(ignored_members(None, br#"{"members":[]}"#), None);
        let group = Write {
            creates: true,
            sent: Some(&sent),
            ..write()
        };
        assert_eq!(
            next(&group, 201, br#"{"id":"g","members":[{"value":"1"}]}"#),
            Next::MembersIgnored {
                id: Some("g".into()),
                missing: 1
            }
        );
    }
}
