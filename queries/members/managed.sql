-- managed_groups: the app groups whose members scimsync keeps (linked, still bound; unbound
-- groups are left as they are), one row per group link of an app with manage_groups.
-- Read by the membership diff (desired.sql, actual.sql) and by drift/group.members.sql.
-- Output columns: app, idp_gid, sp_gid.
SELECT gl.app, gl.idp_gid, gl.sp_gid
FROM group_links gl
JOIN apps a ON a.app = gl.app
WHERE gl.status IN ('kept', 'takeover') AND a.manage_groups
  AND EXISTS (SELECT 1 FROM bindings b WHERE b.app = gl.app AND b.idp = a.idp_source AND b.idp_group_id = gl.idp_group_id)
