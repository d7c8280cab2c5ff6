-- Schema version 11: users and groups indexed by (source, id), the key the auditor views join
-- them by. With `users_source` alone, SQLite read `app_access` at 5 rows/s on a 1M-user store:
-- for each account it walked every user of the IdP to find the linked one. The (source) indexes
-- stay: their entries are in rowid order, which the pulls' reads by source rely on.
CREATE INDEX IF NOT EXISTS users_source_id ON users(source, id);
CREATE INDEX IF NOT EXISTS groups_source_id ON groups(source, id);
