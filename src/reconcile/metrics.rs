//! A cycle's report as Prometheus text exposition (`reconcile --metrics-file`).
use super::{AppState, CycleReport};

/// Prometheus text exposition of a cycle.
pub fn metrics(report: &CycleReport) -> String {
    let mut out = String::new();
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    out.push_str("# HELP scimsync_findings Findings of the last cycle by app and kind.\n# TYPE scimsync_findings gauge\n");
    for a in &report.apps {
        for (kind, n) in &a.findings {
            out.push_str(&format!(
                "scimsync_findings{{app=\"{}\",kind=\"{}\"}} {n}\n",
                esc(&a.app),
                esc(kind.as_str())
            ));
        }
    }
    out.push_str("# HELP scimsync_operations Operations of the last cycle by outcome.\n# TYPE scimsync_operations gauge\n");
    for a in &report.apps {
        let (done, failed) = match a.state {
            AppState::Applied { done, failed } | AppState::HeldBack { done, failed, .. } => (done, failed),
            _ => (0, 0),
        };
        out.push_str(&format!("scimsync_operations{{app=\"{}\",outcome=\"done\"}} {done}\n", esc(&a.app)));
        out.push_str(&format!(
            "scimsync_operations{{app=\"{}\",outcome=\"failed\"}} {failed}\n",
            esc(&a.app)
        ));
    }
    out.push_str(
        "# HELP scimsync_cycle_duration_seconds Duration of the last cycle's stages.\n# TYPE scimsync_cycle_duration_seconds gauge\n",
    );
    for (stage, s) in [
        ("pull", report.pull_seconds),
        ("plan", report.plan_seconds),
        ("apply", report.apply_seconds),
        ("prune", report.prune_seconds),
    ] {
        out.push_str(&format!("scimsync_cycle_duration_seconds{{stage=\"{stage}\"}} {s:.3}\n"));
    }
    out.push_str("# HELP scimsync_last_success_timestamp_seconds Last cycle that left the app in sync or applied.\n# TYPE scimsync_last_success_timestamp_seconds gauge\n");
    for a in &report.apps {
        if let Some(t) = a
            .last_success_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            out.push_str(&format!(
                "scimsync_last_success_timestamp_seconds{{app=\"{}\"}} {}\n",
                esc(&a.app),
                t.timestamp()
            ));
        }
    }
    out.push_str("# HELP scimsync_app_quarantined 1 while the app is quarantined.\n# TYPE scimsync_app_quarantined gauge\n");
    out.push_str("# HELP scimsync_app_consecutive_failures Failed cycles in a row.\n# TYPE scimsync_app_consecutive_failures gauge\n");
    for a in &report.apps {
        let q = u8::from(a.quarantined_until.is_some());
        out.push_str(&format!("scimsync_app_quarantined{{app=\"{}\"}} {q}\n", esc(&a.app)));
        out.push_str(&format!(
            "scimsync_app_consecutive_failures{{app=\"{}\"}} {}\n",
            esc(&a.app),
            a.consecutive_failures
        ));
    }
    out
}
