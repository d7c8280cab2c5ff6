//! The process's memory, for stage logs and benches (Linux: /proc/self/status; elsewhere 0).

/// "peak/current MiB" of resident memory, as stage logs print it.
pub fn resident() -> String {
    format!("{:.0}/{:.0} MiB", mib("VmHWM:"), mib("VmRSS:"))
}

/// Hand memory freed by a finished stage back to the system. glibc keeps freed memory in the
/// arena of the thread that freed it: after the drift engine (whose queries run on tokio's worker
/// threads) about 0.9 GiB of a 1M-user plan stayed resident, and the planner, on another thread,
/// grew the process past it instead of reusing it. A no-op elsewhere than glibc.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Push `item` onto a vector that grows to millions of entries, by an eighth of its capacity
/// rather than double: at most 12.5 % of it unused (at 1M users a doubled vector held 64 MB for
/// 39 MB of keys).
pub fn push_growing_by_an_eighth<T>(v: &mut Vec<T>, item: T) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.capacity() / 8).max(1 << 16));
    }
    v.push(item);
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

/// Where this process's cgroup keeps its memory limit, nearest first: cgroup v2's `memory.max`
/// ("max" when unlimited) and v1's `memory.limit_in_bytes` (a huge number when unlimited), in
/// the process's own group (`/proc/self/cgroup`), then at the top of the mount (a container
/// sees its own group there).
fn cgroup_limit_files() -> Vec<String> {
    let mut files = Vec::new();
    for line in std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default().lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = path.trim_end_matches('/');
        if controllers.is_empty() {
            files.push(format!("/sys/fs/cgroup{path}/memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            files.push(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"));
        }
    }
    files.push("/sys/fs/cgroup/memory.max".into());
    files.push("/sys/fs/cgroup/memory/memory.limit_in_bytes".into());
    files
}

/// The memory this process may use: the cgroup's limit (a container's `memory.max`) when one is
/// set, else the machine's physical memory. Linux; elsewhere 8 GiB.
pub fn available_bytes() -> u64 {
    let cgroup = cgroup_limit_files()
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<u64>().ok()));
    let physical = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    match (cgroup, physical) {
        (Some(c), Some(p)) => c.min(p),
        (Some(c), None) => c,
        (None, Some(p)) => p,
        (None, None) => 8 << 30,
    }
}

/// The memory this process can have, and what says so: `--memory-limit` (or the config's
/// `memory_limit`) when set, else the container's or machine's memory. Unlike [`limit`], not
/// the 1 GiB default: stages that do not hold to the budget compare what they need with this.
pub fn ceiling() -> (u64, &'static str) {
    let set = LIMIT.load(std::sync::atomic::Ordering::Relaxed);
    let available = available_bytes();
    if set != 0 && set < available {
        (set, "memory limit (--memory-limit / memory_limit)")
    } else {
        (available, "memory of the container or machine")
    }
}

/// The memory budget set by `--memory-limit` or the config's `memory_limit` (0: not set).
static LIMIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Set the process's memory budget (what the engine's memory pools are sized from).
pub fn set_limit(bytes: u64) {
    LIMIT.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// The budget when none is set: the memory limit scheduled jobs are commonly given (a
/// Kubernetes CronJob, a small VM). At 1M users every saved report, `sql` streaming every
/// membership and `diff` of the whole history run within it.
pub const DEFAULT_LIMIT: u64 = 1 << 30;

/// The process's memory budget: as set, else [`DEFAULT_LIMIT`]; never more than
/// [`available_bytes`] (the container's limit when there is one).
pub fn limit() -> u64 {
    let (ceiling, _) = ceiling();
    match LIMIT.load(std::sync::atomic::Ordering::Relaxed) {
        0 => DEFAULT_LIMIT.min(ceiling),
        _ => ceiling,
    }
}
