-- group.members: the members of a managed group (linked, still bound; unbound groups are left
-- as they are) must be exactly the in-scope members of its IdP group. attribute = 'add' (new_value
-- = the IdP user id to add; its account may still be missing) or 'remove' (old_value = the app
-- user id to take out). Only accounts linked to an IdP user are removed: an unmanaged account is
-- never changed. detail = the member's userName. Corrective operation: PATCH add/remove members,
-- or PUT the full list.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
WITH managed AS (
    SELECT gl.app, gl.idp_gid, gl.sp_gid, gl.idp_group_id, gl.sp_group_id, a.idp_source, a.app_source
    FROM group_links gl
    JOIN apps a ON a.app = gl.app
    WHERE gl.status IN ('kept', 'takeover') AND a.manage_groups
      AND EXISTS (SELECT 1 FROM bindings b WHERE b.app = gl.app AND b.idp = a.idp_source AND b.idp_group_id = gl.idp_group_id)
),
desired AS (
    SELECT DISTINCT mg.app, mg.idp_gid, mg.sp_gid, mg.idp_group_id, mg.sp_group_id, m.uid AS idp_uid, l.sp_uid
    FROM managed mg
    JOIN memberships m ON m.source = mg.idp_source AND m.gid = mg.idp_gid
    JOIN scope sc ON sc.app = mg.app AND sc.uid = m.uid
    LEFT JOIN links l ON l.app = mg.app AND l.idp_uid = m.uid AND l.status IN ('kept', 'new')
),
actual AS (
    SELECT mg.app, mg.idp_gid, mg.sp_gid, mg.idp_group_id, mg.sp_group_id, m.uid AS sp_uid, mg.app_source
    FROM managed mg
    JOIN memberships m ON m.source = mg.app_source AND m.gid = mg.sp_gid
)
SELECT d.app, 'group.members' AS kind, g.display_name AS subject, d.idp_group_id AS idp_id, d.sp_group_id AS sp_id,
       'add' AS attribute, CAST(NULL AS VARCHAR) AS old_value, i.id AS new_value, i.user_name AS detail
FROM desired d
JOIN apps a ON a.app = d.app
JOIN groups g ON g.source = a.idp_source AND g.gid = d.idp_gid
JOIN users i ON i.source = a.idp_source AND i.uid = d.idp_uid
WHERE d.sp_uid IS NULL
   OR NOT EXISTS (SELECT 1 FROM actual x WHERE x.app = d.app AND x.sp_gid = d.sp_gid AND x.sp_uid = d.sp_uid)
UNION ALL
SELECT x.app, 'group.members' AS kind, g.display_name AS subject, x.idp_group_id AS idp_id, x.sp_group_id AS sp_id,
       'remove' AS attribute, s.id AS old_value, CAST(NULL AS VARCHAR) AS new_value, s.user_name AS detail
FROM actual x
JOIN links l ON l.app = x.app AND l.sp_uid = x.sp_uid AND l.status IN ('kept', 'new', 'idp_gone')
JOIN apps a ON a.app = x.app
JOIN groups g ON g.source = a.idp_source AND g.gid = x.idp_gid
JOIN users s ON s.source = x.app_source AND s.uid = x.sp_uid
WHERE NOT EXISTS (SELECT 1 FROM desired d WHERE d.app = x.app AND d.sp_gid = x.sp_gid AND d.sp_uid = x.sp_uid)
