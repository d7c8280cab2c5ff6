-- actual_members: the members each managed app group has, translated to IdP users through
-- their links (keyed by the app account's integer key, unique to one app). Only linked members:
-- an unlinked account in a managed group is never removed.
-- The engine finds these rows by lookups (src/engine/member_diff/lookups.rs) when the keys
-- suit an index; this query is their definition and the way taken when they do not.
-- Output columns: sp_gid, sp_uid, idp_uid.
SELECT mg.sp_gid, m.uid AS sp_uid, l.idp_uid
FROM links l
JOIN memberships m ON m.uid = l.sp_uid
JOIN managed_groups mg ON mg.sp_gid = m.gid
WHERE l.status IN ('kept', 'new', 'idp_gone')
