-- member_diff: the differences between desired_members and actual_members on (app group, IdP
-- user): add_uid = an IdP user to add, or remove_uid = an app account to take out (the other
-- NULL), as many times as the row appears on its side; rows without an app group are dropped
-- (they name no group to change).
-- The engine computes these rows itself (src/engine/member_diff.rs: both sides streamed as
-- 8-byte keys, sorted and merged; at 1M users 4.8M rows a side, where this full outer join held
-- two hash tables of 2.4M rows); this query is the definition, run by the tests against it
-- and by the .slt cases.
-- Output columns: sp_gid, add_uid, remove_uid.
SELECT COALESCE(d.sp_gid, x.sp_gid) AS sp_gid, d.idp_uid AS add_uid, x.sp_uid AS remove_uid
FROM desired_members d
FULL OUTER JOIN actual_members x ON x.sp_gid = d.sp_gid AND x.idp_uid = d.idp_uid
WHERE (x.sp_gid IS NULL OR d.sp_gid IS NULL) AND COALESCE(d.sp_gid, x.sp_gid) IS NOT NULL
