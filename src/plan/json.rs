//! `plan --format json`: a plan outcome written byte for byte as `serde_json::to_writer_pretty`
//! writes it, its findings and operations rendered on two threads.
//!
//! At 1M users a plan's JSON is 160–185 MB (370k findings, 180k operations), and rendering it
//! on one thread took 0.26–0.33 s, the last stage of the whole plan. Here the elements of the
//! two arrays are rendered in chunks, alternately by two threads, and written in order; each
//! thread keeps at most a few chunks ahead of the writer.
use std::io::{self, Write};
use std::sync::mpsc;

use serde::Serialize;

use super::run::PlanOutcome;

/// Elements to a chunk.
const CHUNK: usize = 2048;
/// Chunks a thread renders ahead of the writer.
const AHEAD: usize = 4;

/// One element of the two arrays.
#[derive(Clone, Copy)]
enum Element<'a> {
    Finding(&'a crate::engine::Finding),
    Operation(&'a super::Operation),
}

/// Write `outcome` as `serde_json::to_writer_pretty(out, outcome)` does.
pub fn write_pretty(out: &mut impl Write, outcome: &PlanOutcome) -> io::Result<()> {
    out.write_all(b"{\n  \"run_id\": ")?;
    serde_json::to_writer(&mut *out, &outcome.run_id)?;
    out.write_all(b",\n  \"apps\": ")?;
    out.write_all(&indented(serde_json::to_vec_pretty(&outcome.apps)?, b"\n  "))?;
    let elements: Vec<Element> = outcome
        .findings
        .iter()
        .map(Element::Finding)
        .chain(outcome.operations.iter().map(Element::Operation))
        .collect();
    let findings = outcome.findings.len();
    let chunks: Vec<&[Element]> = elements.chunks(CHUNK).collect();
    // The arrays' punctuation around element `i` (the first of a chunk, or the last of one).
    let open = |i: usize| -> &'static [u8] {
        match i {
            0 if findings == 0 => b",\n  \"findings\": [],\n  \"operations\": [\n    ",
            0 => b",\n  \"findings\": [\n    ",
            i if i == findings => b"\n  ],\n  \"operations\": [\n    ",
            _ => b",\n    ",
        }
    };
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..2).map(|_| mpsc::sync_channel::<io::Result<Vec<u8>>>(AHEAD)).unzip();
    std::thread::scope(|s| {
        let (chunks, open) = (&chunks, &open);
        for (worker, sender) in senders.into_iter().enumerate() {
            s.spawn(move || {
                for (c, chunk) in chunks.iter().enumerate().skip(worker).step_by(2) {
                    let rendered = render_chunk(chunk, c * CHUNK, open);
                    let failed = rendered.is_err();
                    // The writer stopped (its own error): nothing more is wanted.
                    if sender.send(rendered).is_err() || failed {
                        return;
                    }
                }
            });
        }
        // Dropped when the writing stops, early or not: a worker waiting to send then stops.
        let mut write = || {
            for c in 0..chunks.len() {
                let chunk = receivers[c % 2]
                    .recv()
                    .expect("a worker sends each of its chunks or an error first")?;
                out.write_all(&chunk)?;
            }
            Ok::<_, io::Error>(())
        };
        let written = write();
        drop(receivers);
        written
    })?;
    out.write_all(match (findings, outcome.operations.len()) {
        (0, 0) => b",\n  \"findings\": [],\n  \"operations\": []\n}",
        (_, 0) => b"\n  ],\n  \"operations\": []\n}",
        _ => b"\n  ]\n}",
    })
}

/// The elements of one chunk (the first being element `first`), each after its punctuation.
fn render_chunk(chunk: &[Element], first: usize, open: &impl Fn(usize) -> &'static [u8]) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(chunk.len() * 320);
    let mut element = Vec::with_capacity(1024);
    for (i, e) in chunk.iter().enumerate() {
        buf.extend_from_slice(open(first + i));
        element.clear();
        match e {
            Element::Finding(f) => f.serialize(&mut serde_json::Serializer::pretty(&mut element))?,
            Element::Operation(o) => o.serialize(&mut serde_json::Serializer::pretty(&mut element))?,
        }
        extend_indented(&mut buf, &element, b"\n    ");
    }
    Ok(buf)
}

/// `json` with each line break followed by `indent` (a pretty value, nested deeper): JSON
/// strings hold no raw line break, so every one is the formatter's.
fn indented(json: Vec<u8>, indent: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + json.len() / 8);
    extend_indented(&mut out, &json, indent);
    out
}

fn extend_indented(out: &mut Vec<u8>, json: &[u8], indent: &[u8]) {
    let mut lines = json.split(|&b| b == b'\n');
    if let Some(first) = lines.next() {
        out.extend_from_slice(first);
    }
    for line in lines {
        out.extend_from_slice(indent);
        out.extend_from_slice(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Finding;
    use crate::plan::Body;
    use crate::plan::Operation;
    use crate::vocab::{Action, FindingKind, Method};

    fn finding(i: usize) -> Finding {
        Finding {
            app: format!("app{}", i % 2),
            kind: FindingKind::UserDrift,
            subject: Some(format!("user {i} \"quoted\"\nwith a line break and ünïcödé")),
            idp_id: Some(format!("u{i}")),
            sp_id: (!i.is_multiple_of(3)).then(|| format!("s{i}")),
            attribute: Some("title".into()),
            old_value: None,
            new_value: Some("\t tab \u{1}".into()),
            detail: None,
        }
    }

    fn operation(i: usize) -> Operation {
        Operation {
            seq: i as i64,
            app: "wiki".into(),
            phase: crate::plan::phase::GROUPS,
            action: Action::GroupMembers,
            method: Method::Patch,
            path: format!("Groups/g{i}"),
            body: i.is_multiple_of(2).then(|| {
                Body::of(&serde_json::json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": format!("u{i}")}, {"nested": {"deep": [1, 2, {}], "empty": []}}]}]}))
            }),
            finding: FindingKind::GroupMembers,
            subject: Some(format!("Eng {i}")),
            idp_id: None,
            sp_id: Some(format!("g{i}")),
        }
    }

    fn app(i: usize) -> crate::plan::run::AppPlanInfo {
        let pulls = |source: &str| crate::store::PullState {
            source: source.into(),
            last_ok_run: Some(i as i64),
            last_ok_at: None,
            latest_failed: Some("HTTP 502 on\n page 3".into()),
        };
        crate::plan::run::AppPlanInfo {
            app: format!("app{i}"),
            idp: pulls("idp.corp"),
            sp: pulls("app.wiki"),
            scope_complete: i.is_multiple_of(2),
            skipped: None,
            warnings: vec!["a warning".into(); i],
        }
    }

    #[test]
    fn the_json_is_that_of_to_writer_pretty_whatever_the_counts() {
        for (findings, operations) in [
            (0, 0),
            (1, 0),
            (0, 1),
            (1, 1),
            (CHUNK, 0),
            (0, CHUNK + 1),
            (CHUNK - 1, 1),
            (CHUNK, CHUNK),
            (3 * CHUNK + 5, 2 * CHUNK - 3),
        ] {
            let outcome = PlanOutcome {
                run_id: 42,
                apps: (0..findings % 3).map(app).collect(),
                findings: (0..findings).map(finding).collect(),
                operations: (0..operations).map(operation).collect(),
                timings: vec![("engine".into(), 1.0)],
            };
            let mut expected = Vec::new();
            serde_json::to_writer_pretty(&mut expected, &outcome).unwrap();
            let mut got = Vec::new();
            write_pretty(&mut got, &outcome).unwrap();
            assert!(
                got == expected,
                "{findings} findings, {operations} operations:\n{}\n---\n{}",
                String::from_utf8_lossy(&got[..got.len().min(600)]),
                String::from_utf8_lossy(&expected[..expected.len().min(600)])
            );
        }
    }

    /// A writer that fails after `left` bytes.
    struct Failing {
        left: usize,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left < buf.len() {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"));
            }
            self.left -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_writer_that_fails_stops_the_rendering_with_its_error() {
        let outcome = PlanOutcome {
            run_id: 1,
            apps: Vec::new(),
            findings: (0..20 * CHUNK).map(finding).collect(),
            operations: Vec::new(),
            timings: Vec::new(),
        };
        let err = write_pretty(&mut Failing { left: 100_000 }, &outcome).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
