-- Role mismatches: the role the IdP's role groups give a user differs from the app's (latest plan).
-- Columns: app, subject, app_role, idp_role, detail
SELECT app, subject, old_value AS app_role, new_value AS idp_role, detail
FROM latest_findings
WHERE kind = 'user.role_mismatch'
ORDER BY app, subject
