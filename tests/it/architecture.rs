//! The library's dependencies run one way (docs/architecture.md, "The pipeline"): read from the
//! `crate::` paths of every file under `src/` (the binary's `src/cli/` and `src/main.rs` apart),
//! no two top-level modules use each other, the stages use only the stages before them, and
//! nothing in the library names the binary or the emulator crate.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pipeline's stages in order: a stage may use the ones before it, never one after.
const STAGES: &[&str] = &["scim", "http", "sp", "source", "store", "engine", "plan", "apply", "reconcile"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module → the top-level modules its code names (comments left out).
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if matches!(top.as_str(), "lib" | "main" | "cli") {
            continue;
        }
        let code: String = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let uses = graph.entry(top.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && name != top {
                uses.insert(name);
            }
        }
        for (i, _) in code.match_indices("use crate::{") {
            let list = &code[i + 12..code[i..].find('}').map(|e| i + e).unwrap_or(code.len())];
            for part in list.split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !name.is_empty() && name != top {
                    uses.insert(name);
                }
            }
        }
        assert!(
            !code.contains("scimsync_emulator") && !code.contains("crate::cli"),
            "{}: the library may not use the emulator crate or the binary's cli",
            rel.display()
        );
    }
    graph
}

#[test]
fn library_dependencies_run_one_way() {
    let graph = module_graph();
    let mut two_way = Vec::new();
    for (a, uses) in &graph {
        for b in uses {
            if a < b && graph.get(b).is_some_and(|u| u.contains(a)) {
                two_way.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(two_way.is_empty(), "modules that use each other: {two_way:?}");
    let stage = |m: &str| STAGES.iter().position(|s| *s == m);
    for (module, uses) in &graph {
        let Some(at) = stage(module) else { continue };
        for used in uses {
            if let Some(u) = stage(used) {
                assert!(u < at, "{module} uses {used}, a later stage of the pipeline");
            }
        }
    }
    assert!(
        graph.contains_key("plan") && graph["plan"].contains("engine"),
        "the graph is read: {graph:?}"
    );
}
