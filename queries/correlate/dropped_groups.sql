-- Stored group links to drop: their app group no longer exists. Links made by `apply` carry
-- no integer key until the store resolves them after a pull (see links_pending).
-- Output columns: app, sp_id
SELECT l.app, l.sp_group_id AS sp_id
FROM prior_group_links l
WHERE l.sp_gid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM groups s WHERE s.gid = l.sp_gid AND s.id = l.sp_group_id)
