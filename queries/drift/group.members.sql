-- group.members: the members of a managed group (linked, still bound; unbound groups are left
-- as they are) must be exactly the in-scope members of its IdP group. attribute = 'add' (new_value
-- = the IdP user id to add; its account may still be missing) or 'remove' (old_value = the app
-- user id to take out). Only accounts linked to an IdP user are removed: an unmanaged account is
-- never changed. detail = the member's userName. Corrective operation: PATCH add/remove members,
-- or PUT the full list.
-- How: the app group's members are translated to IdP users through their links (keyed by the
-- app account's integer key, unique to one app), and one full outer join on (app group, IdP user)
-- compares them with the IdP group's active members (a bound group's active members are in scope;
-- active_members.sql). The millions of member rows carry integer keys only; names and the app
-- are joined to the few differences at the end.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
WITH managed AS (
    SELECT gl.app, gl.idp_gid, gl.sp_gid
    FROM group_links gl
    JOIN apps a ON a.app = gl.app
    WHERE gl.status IN ('kept', 'takeover') AND a.manage_groups
      AND EXISTS (SELECT 1 FROM bindings b WHERE b.app = gl.app AND b.idp = a.idp_source AND b.idp_group_id = gl.idp_group_id)
),
desired AS (
    SELECT mg.sp_gid, m.uid AS idp_uid
    FROM managed mg
    JOIN active_members m ON m.gid = mg.idp_gid
),
-- Only linked members: an unlinked account in a managed group is never removed.
actual AS (
    SELECT mg.sp_gid, m.uid AS sp_uid, l.idp_uid
    FROM links l
    JOIN memberships m ON m.uid = l.sp_uid
    JOIN managed mg ON mg.sp_gid = m.gid
    WHERE l.status IN ('kept', 'new', 'idp_gone')
),
diff AS (
    SELECT COALESCE(d.sp_gid, x.sp_gid) AS sp_gid, d.idp_uid AS add_uid, x.sp_uid AS remove_uid
    FROM desired d
    FULL OUTER JOIN actual x ON x.sp_gid = d.sp_gid AND x.idp_uid = d.idp_uid
    WHERE x.sp_gid IS NULL OR d.sp_gid IS NULL
),
-- A member held back by a user.conflict has no account that can be added: the conflict reports
-- it once; it is not group drift that stays pending forever. Filtered on the differences (a
-- few), not on the millions of desired rows: as an anti-join there it hashed every member row
-- (1M users: +0.3 GiB and about a second).
kept AS (
    SELECT f.sp_gid, f.add_uid, f.remove_uid
    FROM diff f
    JOIN managed mg ON mg.sp_gid = f.sp_gid
    WHERE f.add_uid IS NULL
       OR NOT EXISTS (SELECT 1 FROM links c WHERE c.app = mg.app AND c.idp_uid = f.add_uid AND c.status = 'conflict')
)
SELECT mg.app, 'group.members' AS kind, g.display_name AS subject, g.id AS idp_id, sg.id AS sp_id,
       CASE WHEN f.add_uid IS NOT NULL THEN 'add' ELSE 'remove' END AS attribute,
       CASE WHEN f.add_uid IS NULL THEN u.id END AS old_value,
       CASE WHEN f.add_uid IS NOT NULL THEN u.id END AS new_value,
       u.user_name AS detail
FROM kept f
JOIN managed mg ON mg.sp_gid = f.sp_gid
JOIN groups g ON g.gid = mg.idp_gid
JOIN groups sg ON sg.gid = f.sp_gid
JOIN users u ON u.uid = COALESCE(f.add_uid, f.remove_uid)
