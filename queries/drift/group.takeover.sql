-- group.takeover: an unlinked app group named like a bound IdP group is taken over (linked),
-- with no SCIM call; renames and members are then managed like any linked group.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
SELECT gl.app, 'group.takeover' AS kind, s.display_name AS subject, gl.idp_group_id AS idp_id, gl.sp_group_id AS sp_id,
       CAST(NULL AS VARCHAR) AS attribute, CAST(NULL AS VARCHAR) AS old_value, CAST(NULL AS VARCHAR) AS new_value, 'linked by name' AS detail
FROM group_links gl
JOIN apps a ON a.app = gl.app
JOIN groups s ON s.gid = gl.sp_gid
WHERE gl.status = 'takeover'
