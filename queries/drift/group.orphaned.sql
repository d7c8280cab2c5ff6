-- group.orphaned: a managed app group whose IdP group was deleted (seed: "Managed groups
-- deleted in JumpCloud are deleted in the application"). Its members who are now out of scope
-- show up as user.orphaned. Like user.orphaned, never planned while the app's scope is
-- incomplete. Corrective operation: DELETE /Groups/{id}.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
SELECT gl.app, 'group.orphaned' AS kind, s.display_name AS subject, gl.idp_group_id AS idp_id, s.id AS sp_id,
       CAST(NULL AS VARCHAR) AS attribute, CAST(NULL AS VARCHAR) AS old_value, CAST(NULL AS VARCHAR) AS new_value, 'deleted in the IdP' AS detail
FROM group_links gl
JOIN apps a ON a.app = gl.app
JOIN groups s ON s.gid = gl.sp_gid
WHERE gl.status = 'idp_gone' AND a.manage_groups AND a.scope_complete
