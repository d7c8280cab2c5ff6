//! A drift query's output rows as [`Finding`]s, in their order.
//!
//! Each query's findings are sorted as soon as its rows are read, where another query or the
//! other stream of queries keeps the second core busy, and the sorted runs of every query are
//! then merged ([`merge`]). A large result (`group.members`' query, when its lookups leave it
//! to the query: 211k of 274k findings at 1M users) is read and sorted in two halves on two
//! threads. At 1M users, gathering every
//! finding and sorting them at the end, on one thread, took 0.21–0.24 s; a stable sort of the
//! gathered runs (which merges the runs it finds) still took 0.10 s.
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};

use super::{utf8_column, EngineError, Finding};

/// The columns every drift query returns, in [`Finding`]'s order.
const COLUMNS: [&str; 9] = [
    "app",
    "kind",
    "subject",
    "idp_id",
    "sp_id",
    "attribute",
    "old_value",
    "new_value",
    "detail",
];

/// Rows from which the findings are read and sorted on two threads: below it a second thread
/// costs more than it saves.
const ROWS_FOR_TWO_THREADS: usize = 32 * 1024;

/// The rows of a drift query's output batch; a `kind` that is no finding kind is an error
/// naming the query (a query under `queries/drift/` was changed without the vocabulary).
pub(super) fn findings_of(query: &str, b: &RecordBatch) -> Result<Vec<Finding>, EngineError> {
    let columns: Vec<ArrayRef> = COLUMNS.iter().map(|name| utf8_column(b, name)).collect();
    let text: Vec<&StringArray> = columns.iter().map(|c| c.as_string::<i32>()).collect();
    let value = |column: usize, row: usize| text[column].is_valid(row).then(|| text[column].value(row).to_string());
    (0..b.num_rows())
        .map(|row| {
            let kind = if text[1].is_valid(row) { text[1].value(row) } else { "" };
            Ok(Finding {
                app: value(0, row).unwrap_or_default(),
                kind: kind.parse().map_err(|source| EngineError::Kind {
                    query: query.to_string(),
                    source,
                })?,
                subject: value(2, row),
                idp_id: value(3, row),
                sp_id: value(4, row),
                attribute: value(5, row),
                old_value: value(6, row),
                new_value: value(7, row),
                detail: value(8, row),
            })
        })
        .collect()
}

/// The findings of `batches` (one query's output), sorted. From [`ROWS_FOR_TWO_THREADS`] rows
/// on, each half of the batches is read and sorted on its own thread, and the halves merged
/// here: the engine's merge of every query's findings then moves the kinds apart whole.
pub(super) fn sorted(query: &str, batches: &[RecordBatch]) -> Result<Vec<Finding>, EngineError> {
    let read_sorted = |batches: &[RecordBatch]| {
        let mut findings = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for b in batches {
            findings.extend(findings_of(query, b)?);
        }
        findings.sort_unstable();
        Ok::<_, EngineError>(findings)
    };
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows < ROWS_FOR_TWO_THREADS || batches.len() < 2 {
        return read_sorted(batches);
    }
    // The first batches holding half the rows, and the rest.
    let mut seen = 0;
    let half = batches
        .iter()
        .position(|b| {
            seen += b.num_rows();
            seen >= rows / 2
        })
        .map_or(batches.len(), |i| i + 1)
        .min(batches.len() - 1);
    let (first, second) = batches.split_at(half);
    let (first, second) = crate::threads::join(|| read_sorted(first), || read_sorted(second));
    Ok(merge(vec![first?, second?]))
}

/// The findings of `runs`, each sorted, in their order. Each finding is moved once, and a
/// run's findings up to the next run's first are moved at once: runs of kinds apart (a query
/// each) are moved whole. A binary heap of the runs' heads took 0.12 s at 1M users (each pop
/// moved findings up and down the heap), and this merge 0.075 s when the halves of
/// `group.members` were among the runs (each of their findings compared with every run's
/// first).
pub(super) fn merge(runs: Vec<Vec<Finding>>) -> Vec<Finding> {
    debug_assert!(runs.iter().all(|r| r.is_sorted()), "every run is sorted");
    let mut merged = Vec::with_capacity(runs.iter().map(Vec::len).sum());
    let mut runs: Vec<std::vec::IntoIter<Finding>> = runs.into_iter().map(Vec::into_iter).collect();
    loop {
        runs.retain(|r| r.len() > 0);
        // The run with the least first finding, and the least first finding of the others.
        let least = (0..runs.len()).min_by(|&a, &b| runs[a].as_slice()[0].cmp(&runs[b].as_slice()[0]));
        let Some(least) = least else { break };
        let next = (0..runs.len()).filter(|&r| r != least).map(|r| &runs[r].as_slice()[0]).min();
        let taken = match next {
            Some(bound) => leading_at_most(runs[least].as_slice(), bound),
            None => runs[least].len(),
        };
        merged.extend(runs[least].by_ref().take(taken));
    }
    merged
}

/// How many of `sorted`'s first findings are at most `bound` (at least one, `sorted[0]`, which
/// the caller knows to be): a search that doubles its step, then halves it, so a short answer
/// takes few comparisons and a long one a logarithm of it.
fn leading_at_most(sorted: &[Finding], bound: &Finding) -> usize {
    let mut step = 1;
    while step < sorted.len() && sorted[step] <= *bound {
        step *= 2;
    }
    let (from, to) = (step / 2, step.min(sorted.len()));
    from + 1 + sorted[from + 1..to].partition_point(|f| f <= bound)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A drift query's output: `rows` rows of (app, kind, subject, ...) in an order far from
    /// sorted, in batches of `batch` rows.
    fn output(rows: usize, batch: usize, kind: &str) -> Vec<RecordBatch> {
        (0..rows)
            .step_by(batch)
            .map(|start| {
                let end = (start + batch).min(rows);
                let column = |f: &dyn Fn(usize) -> Option<String>| Arc::new((start..end).map(f).collect::<StringArray>()) as ArrayRef;
                let scrambled = |i: usize| (i * 7919) % rows;
                RecordBatch::try_from_iter([
                    ("app", column(&|i| Some(format!("app{}", scrambled(i) % 3)))),
                    ("kind", column(&|_| Some(kind.to_string()))),
                    (
                        "subject",
                        column(&|i| (scrambled(i) % 5 != 0).then(|| format!("group {}", scrambled(i) % 97))),
                    ),
                    ("idp_id", column(&|i| Some(format!("g{}", scrambled(i) % 97)))),
                    ("sp_id", column(&|_| None)),
                    ("attribute", column(&|i| Some(if i % 2 == 0 { "add" } else { "remove" }.into()))),
                    ("old_value", column(&|i| Some(format!("u{}", scrambled(i))))),
                    ("new_value", column(&|_| None)),
                    ("detail", column(&|i| Some(format!("user {}", scrambled(i) % 11)))),
                ])
                .unwrap()
            })
            .collect()
    }

    fn one_by_one(batches: &[RecordBatch]) -> Vec<Finding> {
        let mut all: Vec<Finding> = batches.iter().flat_map(|b| findings_of("q", b).unwrap()).collect();
        all.sort_unstable();
        all
    }

    #[test]
    fn the_runs_of_each_query_merged_are_every_finding_in_order_whatever_the_size() {
        let kinds = ["group.members", "user.missing", "user.drift", "user.drift"];
        for (rows, batch) in [
            (0, 8),
            (5, 8),
            (1000, 64),
            (ROWS_FOR_TWO_THREADS, 4096),
            (ROWS_FOR_TWO_THREADS + 3, 8192),
            (70_000, 70_000),
        ] {
            let outputs: Vec<Vec<RecordBatch>> = kinds
                .iter()
                .enumerate()
                .map(|(i, kind)| output(rows / (i + 1), batch, kind))
                .collect();
            let runs: Vec<Vec<Finding>> = outputs.iter().map(|batches| sorted("q", batches).unwrap()).collect();
            let merged = merge(runs);
            let mut expected: Vec<Finding> = outputs.iter().flat_map(|batches| one_by_one(batches)).collect();
            expected.sort_unstable();
            assert!(merged == expected, "{rows} rows in batches of {batch}");
        }
        assert!(merge(vec![Vec::new(), Vec::new()]).is_empty());
    }

    #[test]
    fn the_leading_findings_at_most_a_bound_are_counted_at_any_length() {
        let sorted = one_by_one(&output(300, 300, "user.drift"));
        for count in 1..=sorted.len() {
            // Bounded by the count-th finding, or past the last one.
            let bound = sorted.get(count).cloned().unwrap_or_else(|| Finding {
                app: "zzz".into(),
                ..sorted[0].clone()
            });
            let expected = sorted.iter().filter(|f| **f <= bound).count();
            assert_eq!(leading_at_most(&sorted, &bound), expected, "bounded at {count}");
        }
    }

    #[test]
    fn an_unknown_kind_names_the_query_in_either_half() {
        let good = output(2 * ROWS_FOR_TWO_THREADS, 4096, "group.members");
        let bad = output(10, 10, "group.nonsense");
        // Read by this thread (first batches) or by the other (last ones).
        for batches in [[bad.clone(), good.clone()].concat(), [good, bad].concat()] {
            let err = sorted("drift/group.members", &batches).unwrap_err().to_string();
            assert!(err.contains("drift/group.members"), "{err}");
        }
    }
}
