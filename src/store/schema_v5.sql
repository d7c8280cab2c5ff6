-- Schema version 5: where an IdP's next incremental pull starts (Okta's lastUpdated marks,
-- Microsoft Graph's delta links). Sync state, not a credential; NULL: the next pull is full.
ALTER TABLE sources ADD COLUMN sync_cursor TEXT;
