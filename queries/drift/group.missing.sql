-- group.missing: a bound IdP group, with at least one in-scope member, that has no linked app
-- group (after take-over by name). Empty groups are not created (seed: "Empty groups are not
-- created"). Only for apps with manage_groups. Corrective operation: POST /Groups with members.
-- A bound group's active members are exactly its in-scope members (scope.sql), so "has an
-- in-scope member" is "has an active member" (active_members.sql) — one that a user.conflict
-- does not hold back (it has, or will get, an account).
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
WITH unlinked AS (
    SELECT DISTINCT a.app, g.gid, g.id, g.display_name
    FROM apps a
    JOIN bindings b ON b.app = a.app AND b.idp = a.idp_source
    JOIN groups g ON g.source = a.idp_source AND g.id = b.idp_group_id
    WHERE a.manage_groups
      AND NOT EXISTS (SELECT 1 FROM group_links gl WHERE gl.app = a.app AND gl.idp_gid = g.gid)
),
-- Members that have, or will get, an account: not those a user.conflict holds back.
with_member AS (
    SELECT DISTINCT n.app, n.gid
    FROM unlinked n
    JOIN active_members m ON m.gid = n.gid
    WHERE NOT EXISTS (SELECT 1 FROM links c WHERE c.app = n.app AND c.idp_uid = m.uid AND c.status = 'conflict')
)
SELECT n.app, 'group.missing' AS kind, n.display_name AS subject, n.id AS idp_id, CAST(NULL AS VARCHAR) AS sp_id,
       'displayName' AS attribute, CAST(NULL AS VARCHAR) AS old_value, n.display_name AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM unlinked n
JOIN with_member w ON w.app = n.app AND w.gid = n.gid
