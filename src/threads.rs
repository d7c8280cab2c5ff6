//! Two pieces of work side by side: one on this thread, the other on a scoped thread of its
//! own (the engine's and the planner's halves, the plan's digest beside its store reads).

/// `a()` on this thread while `b()` runs on a scoped thread; both results. A panic in `b` is
/// raised again here, as if `b` had run on this thread.
pub fn join<A, B: Send>(a: impl FnOnce() -> A, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let b = s.spawn(b);
        let a = a();
        (a, b.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_results_in_order_and_the_other_threads_panic_raised_here() {
        assert_eq!(join(|| 1, || "two"), (1, "two"));
        let panicked = std::panic::catch_unwind(|| join(|| 1, || -> u8 { panic!("in b") }));
        let message = panicked.expect_err("b's panic reaches the caller");
        assert_eq!(message.downcast_ref::<&str>(), Some(&"in b"));
    }
}
