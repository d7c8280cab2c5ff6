-- Stored user links to drop: their app account no longer exists. Links made by `apply` carry
-- no integer key until the store resolves them after a pull (see links_pending).
-- The engine finds these rows itself as it confirms the others (src/engine/prior.rs): this
-- query is their definition (a property test compares the two) and runs when the users' keys
-- are not dense.
-- Output columns: app, sp_id
SELECT l.app, l.sp_user_id AS sp_id
FROM prior_links l
WHERE l.sp_uid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users s WHERE s.uid = l.sp_uid AND s.id = l.sp_user_id)
