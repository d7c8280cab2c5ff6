//! Keyed digests of a plan's findings and of its operations, to tell whether they are exactly
//! the previous plan's (then they are stored once: see schema 10). SipHash-1-3 with 128 bits of
//! output and the store's own random key ([`crate::store::Store::digest_key`]): every field is
//! written with its length (and `None` apart from `""`), so two different lists cannot be read
//! as the same bytes, and without the key nobody can aim at a digest.
use std::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher13};

use super::Operation;
use crate::engine::Finding;

struct Digest(SipHasher13);

impl Digest {
    fn new(key: u128, what: &str, count: usize) -> Digest {
        let mut d = Digest(SipHasher13::new_with_keys(key as u64, (key >> 64) as u64));
        d.text(Some(what));
        d.0.write_u64(count as u64);
        d
    }

    fn text(&mut self, value: Option<&str>) {
        match value {
            None => self.0.write_u8(0),
            Some(s) => {
                self.0.write_u8(1);
                self.0.write_u64(s.len() as u64);
                self.0.write(s.as_bytes());
            }
        }
    }

    fn operation(&mut self, op: &Operation) {
        self.0.write_i64(op.seq);
        self.0.write_u8(op.phase);
        for field in [
            Some(op.app.as_str()),
            Some(op.action.as_str()),
            Some(op.method.as_str()),
            Some(op.path.as_str()),
            op.body.as_ref().map(|b| b.text()),
            Some(op.finding.as_str()),
            op.subject.as_deref(),
            op.idp_id.as_deref(),
            op.sp_id.as_deref(),
        ] {
            self.text(field);
        }
    }

    fn hex(&self) -> String {
        format!("{:032x}", u128::from(self.0.finish128()))
    }
}

/// The digest of a plan run's findings, in their order.
pub fn findings(key: u128, findings: &[Finding]) -> String {
    let mut d = Digest::new(key, "findings", findings.len());
    for f in findings {
        for field in [
            Some(f.app.as_str()),
            Some(f.kind.as_str()),
            f.subject.as_deref(),
            f.detail.as_deref(),
            f.idp_id.as_deref(),
            f.sp_id.as_deref(),
            f.attribute.as_deref(),
            f.old_value.as_deref(),
            f.new_value.as_deref(),
        ] {
            d.text(field);
        }
    }
    d.hex()
}

/// The fewest operations whose digest is taken on two threads.
const OPERATIONS_FOR_TWO_THREADS: usize = 8192;

/// The digest of a plan's operations, in their order (numbers and bodies included): that of
/// their count and of the digests of their two halves, taken side by side (at 1M users one
/// digest of 180k operations took 0.06 s on one thread while the other core waited).
pub fn operations(key: u128, operations: &[Operation]) -> String {
    let (first, second) = operations.split_at(operations.len() / 2);
    let half = |part: &[Operation], which: &str| {
        let mut d = Digest::new(key, which, part.len());
        for op in part {
            d.operation(op);
        }
        d.0.finish128()
    };
    let (a, b) = if operations.len() < OPERATIONS_FOR_TWO_THREADS {
        (half(first, "operations, first half"), half(second, "operations, second half"))
    } else {
        crate::threads::join(|| half(first, "operations, first half"), || half(second, "operations, second half"))
    };
    let mut d = Digest::new(key, "operations", operations.len());
    d.0.write_u128(u128::from(a));
    d.0.write_u128(u128::from(b));
    d.hex()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::FindingKind;

    fn finding(subject: Option<&str>, detail: Option<&str>) -> Finding {
        Finding {
            app: "wiki".into(),
            kind: FindingKind::UserMissing,
            subject: subject.map(Into::into),
            idp_id: None,
            sp_id: None,
            attribute: None,
            old_value: None,
            new_value: None,
            detail: detail.map(Into::into),
        }
    }

    #[test]
    fn a_digest_changes_with_any_field_its_boundaries_and_the_key() {
        let key = 7;
        let a = findings(key, &[finding(Some("ab"), Some("c"))]);
        assert_eq!(
            a,
            findings(key, &[finding(Some("ab"), Some("c"))]),
            "the same rows, the same digest"
        );
        // The same bytes split differently, a missing value against an empty one, another key.
        assert_ne!(a, findings(key, &[finding(Some("a"), Some("bc"))]));
        assert_ne!(findings(key, &[finding(None, Some(""))]), findings(key, &[finding(Some(""), None)]));
        assert_ne!(a, findings(8, &[finding(Some("ab"), Some("c"))]));
        assert_ne!(findings(key, &[]), operations(key, &[]), "what is digested is part of it");
    }

    fn operation(seq: i64, body: &str) -> Operation {
        Operation {
            seq,
            app: "wiki".into(),
            phase: 1,
            action: crate::plan::Action::GroupMembers,
            method: crate::plan::Method::Patch,
            path: format!("Groups/g{seq}"),
            body: Some(crate::plan::Body::of(&serde_json::json!({ "value": body }))),
            finding: FindingKind::GroupMembers,
            subject: None,
            idp_id: None,
            sp_id: Some(format!("g{seq}")),
        }
    }

    #[test]
    fn an_operations_digest_sees_every_operation_in_both_halves_on_one_thread_or_two() {
        let key = 7;
        for count in [3, OPERATIONS_FOR_TWO_THREADS + 1] {
            let ops: Vec<Operation> = (0..count as i64).map(|i| operation(i, "a")).collect();
            let digest = operations(key, &ops);
            assert_eq!(
                digest,
                operations(key, &ops.clone()),
                "{count} operations: the same, the same digest"
            );
            for changed in [0, count / 2 - 1, count / 2, count - 1] {
                let mut other = ops.clone();
                other[changed] = operation(changed as i64, "b");
                assert_ne!(digest, operations(key, &other), "{count} operations: body {changed} changed");
            }
            let mut swapped = ops.clone();
            swapped.swap(0, count - 1);
            assert_ne!(digest, operations(key, &swapped), "{count} operations: the first and last swapped");
            assert_ne!(digest, operations(key, &ops[..count - 1]), "{count} operations: one fewer");
        }
    }
}
