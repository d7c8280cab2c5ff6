-- desired_members: the members each managed app group should have: its IdP group's active
-- members (a bound group's active members are in scope; active_members.sql), as IdP users.
-- Millions of rows at 1M users, integer keys only.
-- The engine finds these rows by lookups (src/engine/member_diff/lookups.rs) when the keys
-- suit an index; this query is their definition and the way taken when they do not.
-- Output columns: sp_gid, idp_uid.
SELECT mg.sp_gid, m.uid AS idp_uid
FROM managed_groups mg
JOIN active_members m ON m.gid = mg.idp_gid
