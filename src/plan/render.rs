//! Findings in words, for people: the plan table, the demo and reconcile's summary.
use super::Finding;
use crate::vocab::FindingKind as K;

/// A readable label per plan entry: `+` create/add, `~` change, `-` deactivate/remove/delete,
/// `!` needs a person, `?` informational.
pub fn symbol(f: &Finding) -> &'static str {
    match (f.kind, f.attribute.as_deref()) {
        (K::UserMissing | K::GroupMissing | K::UserReactivate, _) | (K::GroupMembers, Some("add")) => "+",
        (K::UserOrphaned | K::GroupOrphaned, _) | (K::GroupMembers, Some("remove")) => "-",
        (K::UserConflict, _) => "!",
        (K::UserUnmanaged, _) => "?",
        _ => "~",
    }
}

/// One line describing a finding for people.
pub fn describe_finding(f: &Finding) -> String {
    let subject = f.subject.clone().unwrap_or_default();
    let v = |o: &Option<String>| o.clone().unwrap_or_else(|| "∅".into());
    match f.kind {
        K::UserDrift | K::UserRoleMismatch | K::GroupRenamed => {
            format!("{subject}  {}: {} → {}", v(&f.attribute), v(&f.old_value), v(&f.new_value))
        }
        K::GroupMembers => format!(
            "{subject}  {} {}",
            f.attribute.as_deref().unwrap_or(""),
            f.detail.clone().unwrap_or_default()
        ),
        K::UserOrphaned | K::GroupOrphaned | K::UserUnmanaged => format!("{subject}  ({})", f.detail.clone().unwrap_or_default()),
        K::UserConflict => format!("{subject}  matches {} by {}", v(&f.old_value), v(&f.attribute)),
        K::GroupDuplicate => format!("{subject}  (id {}: {})", v(&f.sp_id), f.detail.clone().unwrap_or_default()),
        _ => subject,
    }
}
