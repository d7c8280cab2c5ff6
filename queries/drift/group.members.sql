-- group.members: the members of a managed group (linked, still bound; unbound groups are left
-- as they are) must be exactly the in-scope members of its IdP group. attribute = 'add' (new_value
-- = the IdP user id to add; its account may still be missing) or 'remove' (old_value = the app
-- user id to take out). Only accounts linked to an IdP user are removed: an unmanaged account is
-- never changed. detail = the member's userName. Corrective operation: PATCH add/remove members,
-- or PUT the full list.
-- How: `member_diff` (members/diff.sql) holds the differences between each managed app group's
-- linked members and its IdP group's active members, on integer keys; names and the app are
-- joined to those few rows here. `managed_groups` is members/managed.sql.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
WITH
-- A member held back by a user.conflict has no account that can be added: the conflict reports
-- it once; it is not group drift that stays pending forever. Filtered on the differences (a
-- few), not on the millions of desired rows: as an anti-join there it hashed every member row
-- (1M users: +0.3 GiB and about a second).
kept AS (
    SELECT f.sp_gid, f.add_uid, f.remove_uid
    FROM member_diff f
    JOIN managed_groups mg ON mg.sp_gid = f.sp_gid
    WHERE f.add_uid IS NULL
       OR NOT EXISTS (SELECT 1 FROM links c WHERE c.app = mg.app AND c.idp_uid = f.add_uid AND c.status = 'conflict')
)
SELECT mg.app, 'group.members' AS kind, g.display_name AS subject, g.id AS idp_id, sg.id AS sp_id,
       CASE WHEN f.add_uid IS NOT NULL THEN 'add' ELSE 'remove' END AS attribute,
       CASE WHEN f.add_uid IS NULL THEN u.id END AS old_value,
       CASE WHEN f.add_uid IS NOT NULL THEN u.id END AS new_value,
       u.user_name AS detail
FROM kept f
JOIN managed_groups mg ON mg.sp_gid = f.sp_gid
JOIN groups g ON g.gid = mg.idp_gid
JOIN groups sg ON sg.gid = f.sp_gid
JOIN users u ON u.uid = COALESCE(f.add_uid, f.remove_uid)
