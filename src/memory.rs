//! The process's memory, for stage logs and benches (Linux: /proc/self/status; elsewhere 0).

/// "peak/current MiB" of resident memory, as stage logs print it.
pub fn resident() -> String {
    format!("{:.0}/{:.0} MiB", mib("VmHWM:"), mib("VmRSS:"))
}

/// Peak resident memory of the process so far, in MiB.
pub fn peak_mib() -> f64 {
    mib("VmHWM:")
}

fn mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}
