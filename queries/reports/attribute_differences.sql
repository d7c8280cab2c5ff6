-- Attribute differences: every user attribute whose value in the app differs from the IdP's,
-- core and mapped alike (latest plan); a mapped attribute's detail names its mapping.
-- Columns: app, subject, attribute, app_value, idp_value, detail
SELECT app, subject, attribute, old_value AS app_value, new_value AS idp_value, detail
FROM latest_findings
WHERE kind = 'user.drift'
ORDER BY app, subject, attribute
