-- group.missing: a bound IdP group, with at least one in-scope member, that has no linked app
-- group (after take-over by name). Empty groups are not created (seed: "Empty groups are not
-- created"). Only for apps with manage_groups. Corrective operation: POST /Groups with members.
-- A bound group's active members are exactly its in-scope members (scope.sql), so "has an
-- in-scope member" is "has an active member" (active_members.sql).
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
SELECT DISTINCT a.app, 'group.missing' AS kind, g.display_name AS subject, g.id AS idp_id, CAST(NULL AS VARCHAR) AS sp_id,
       'displayName' AS attribute, CAST(NULL AS VARCHAR) AS old_value, g.display_name AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM apps a
JOIN bindings b ON b.app = a.app AND b.idp = a.idp_source
JOIN groups g ON g.source = a.idp_source AND g.id = b.idp_group_id
WHERE a.manage_groups
  AND EXISTS (SELECT 1 FROM active_members m WHERE m.gid = g.gid)
  AND NOT EXISTS (SELECT 1 FROM group_links gl WHERE gl.app = a.app AND gl.idp_gid = g.gid)
