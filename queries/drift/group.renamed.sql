-- group.renamed: a managed (linked, still bound) group whose app name differs from the IdP's
-- (seed: "Group renaming is supported"). Corrective operation: PATCH displayName or PUT.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
SELECT gl.app, 'group.renamed' AS kind, i.display_name AS subject, i.id AS idp_id, s.id AS sp_id,
       'displayName' AS attribute, s.display_name AS old_value, i.display_name AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM group_links gl
JOIN apps a ON a.app = gl.app
JOIN groups i ON i.gid = gl.idp_gid
JOIN groups s ON s.gid = gl.sp_gid
WHERE gl.status IN ('kept', 'takeover') AND a.manage_groups
  AND i.display_name <> s.display_name
  AND EXISTS (SELECT 1 FROM bindings b WHERE b.app = gl.app AND b.idp = a.idp_source AND b.idp_group_id = i.id)
