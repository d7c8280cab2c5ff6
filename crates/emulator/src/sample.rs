//! A deterministic synthetic company: users, department groups and role groups, written as the
//! `file` IdP format. Used by `scimsync demo`, the benchmarks and the tests; the same `seed`
//! gives the same directory.
use std::fmt::Write;

pub use crate::rng::SplitMix;

const FIRST: &[&str] = &[
    "Ada", "Ben", "Chloe", "Dan", "Eve", "Finn", "Grace", "Hugo", "Iris", "Jack", "Kara", "Liam", "Maya", "Noah", "Olga", "Paul", "Quinn",
    "Rosa", "Sam", "Tara", "Uma", "Vic", "Wes", "Xena", "Yuri", "Zoe",
];
const LAST: &[&str] = &[
    "Abbott", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jones", "Khan", "Lopez", "Moreau", "Nagy", "Okafor",
    "Park", "Quist", "Rossi", "Silva", "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Young", "Zimmer",
];
pub const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Support",
    "Finance",
    "People",
    "Legal",
    "Design",
    "Product",
    "Operations",
];
const TITLES: &[&str] = &["Engineer", "Manager", "Analyst", "Designer", "Specialist", "Director", "Associate"];
const ZONES: &[&str] = &[
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
    "Europe/London",
    "America/Los_Angeles",
];

/// One generated person.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub first: &'static str,
    pub last: &'static str,
    pub email: String,
    pub employee_id: String,
    pub active: bool,
    pub title: &'static str,
    pub timezone: &'static str,
    pub department: usize,
    /// Role group for apps with editor/viewer roles: Some(true) editor, Some(false) viewer.
    pub editor: Option<bool>,
}

/// The generated company: people, and `groups` extra generic groups beyond the departments.
#[derive(Debug, Clone)]
pub struct Company {
    pub people: Vec<Person>,
    pub extra_groups: usize,
}

impl Company {
    pub fn generate(users: usize, extra_groups: usize, seed: u64) -> Company {
        let mut rng = SplitMix::new(seed);
        let people = (0..users)
            .map(|i| {
                let first = FIRST[rng.below(FIRST.len() as u64) as usize];
                let last = LAST[rng.below(LAST.len() as u64) as usize];
                Person {
                    id: format!("u{i:07}"),
                    first,
                    last,
                    email: format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), i),
                    employee_id: format!("E{i:07}"),
                    active: !rng.chance(8),
                    title: TITLES[rng.below(TITLES.len() as u64) as usize],
                    timezone: ZONES[rng.below(ZONES.len() as u64) as usize],
                    department: rng.below(DEPARTMENTS.len() as u64) as usize,
                    editor: match rng.below(10) {
                        0..=3 => Some(true),
                        4..=7 => Some(false),
                        _ => None,
                    },
                }
            })
            .collect();
        Company { people, extra_groups }
    }

    /// The directory as a `file` IdP document. Groups: the departments, "Editors", "Viewers",
    /// and `extra_groups` project groups of ~`members_per_extra` random members.
    pub fn to_file_json(&self, members_per_extra: usize, seed: u64) -> String {
        let mut out = String::with_capacity(self.people.len() * 260 + 1024);
        out.push_str("{\"users\":[\n");
        for (i, p) in self.people.iter().enumerate() {
            if i > 0 {
                out.push_str(",\n");
            }
            let _ = write!(
                out,
                r#"{{"id":"{}","username":"{}","email":"{}","firstname":"{}","lastname":"{}","displayName":"{} {}","employeeIdentifier":"{}","active":{},"status":"{}","jobTitle":"{}","timezone":"{}"}}"#,
                p.id,
                p.email,
                p.email,
                p.first,
                p.last,
                p.first,
                p.last,
                p.employee_id,
                p.active,
                if p.active { "ACTIVATED" } else { "SUSPENDED" },
                p.title,
                p.timezone
            );
        }
        out.push_str("\n],\"groups\":[\n");
        let mut first_group = true;
        let mut group = |out: &mut String, id: &str, name: &str, members: &mut dyn Iterator<Item = &str>| {
            if !first_group {
                out.push_str(",\n");
            }
            first_group = false;
            let _ = write!(out, r#"{{"id":"{id}","name":"{name}","members":["#);
            for (j, m) in members.enumerate() {
                if j > 0 {
                    out.push(',');
                }
                let _ = write!(out, "\"{m}\"");
            }
            out.push_str("]}");
        };
        for (d, name) in DEPARTMENTS.iter().enumerate() {
            group(
                &mut out,
                &format!("g-dept-{d}"),
                name,
                &mut self.people.iter().filter(|p| p.department == d).map(|p| p.id.as_str()),
            );
        }
        group(
            &mut out,
            "g-editors",
            "Editors",
            &mut self.people.iter().filter(|p| p.editor == Some(true)).map(|p| p.id.as_str()),
        );
        group(
            &mut out,
            "g-viewers",
            "Viewers",
            &mut self.people.iter().filter(|p| p.editor == Some(false)).map(|p| p.id.as_str()),
        );
        let mut rng = SplitMix::new(seed ^ 0x5eed);
        let n = self.people.len() as u64;
        for g in 0..self.extra_groups {
            let mut members: Vec<usize> = (0..members_per_extra).map(|_| rng.below(n) as usize).collect();
            members.sort_unstable();
            members.dedup();
            group(
                &mut out,
                &format!("g-proj-{g:06}"),
                &format!("Project {g:06}"),
                &mut members.iter().map(|&m| self.people[m].id.as_str()),
            );
        }
        out.push_str("\n]}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_directory() {
        let a = Company::generate(300, 5, 7).to_file_json(20, 7);
        let b = Company::generate(300, 5, 7).to_file_json(20, 7);
        assert_eq!(a, b);
    }
}
