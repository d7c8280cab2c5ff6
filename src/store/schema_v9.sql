-- Schema version 9: retention (`scimsync prune`). `store_meta` holds what the store knows about
-- itself: `history_horizon` (the earliest instant `--at` and `diff` still answer: closed versions
-- that ended before it were pruned), `events_horizon`, `last_prune_at`.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
