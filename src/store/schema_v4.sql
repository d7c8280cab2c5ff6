-- Schema version 4: app health for `scimsync reconcile` (quarantine of apps that keep failing).
CREATE TABLE app_health (
    app                  TEXT PRIMARY KEY,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    last_success_at      TEXT,
    quarantined_until    TEXT       -- NULL: not quarantined
);
