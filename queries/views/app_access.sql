-- app_access: who has access to what. One row per app account, with the IdP user it is linked
-- to (as of the last plan's correlation) and the app's bound IdP groups that grant it.
-- Written in the SQL that SQLite (3.35+), DuckDB and DataFusion share: the same view is in the
-- store. group_concat is SQLite's string_agg (DataFusion gets it as an alias).
-- Columns: app, account_id, account_user_name, account_email, account_active (1/0),
--   account_role, idp, idp_user_id, idp_user_name, idp_email, idp_active (1/0, NULL unlinked),
--   matched_by (externalId/userName/email/created, NULL unlinked),
--   via_groups (bound IdP groups the IdP user is a direct member of, comma-separated),
--   access ('linked' | 'unlinked': an account no IdP user is known to own)
SELECT
    substr(a.source, 5) AS app,
    a.id AS account_id,
    a.user_name AS account_user_name,
    a.email AS account_email,
    a.active AS account_active,
    a.role AS account_role,
    ai.idp AS idp,
    l.idp_user_id AS idp_user_id,
    i.user_name AS idp_user_name,
    i.email AS idp_email,
    i.active AS idp_active,
    l.matched_by AS matched_by,
    v.via_groups AS via_groups,
    CASE WHEN l.idp_user_id IS NULL THEN 'unlinked' ELSE 'linked' END AS access
FROM (
    -- each app source with the IdP(s) bound to it, joined before the accounts: DataFusion then
    -- hashes these few rows and streams the accounts through them (joined after, it hashed the
    -- 985k accounts of a 1M-user store to meet one row: 107 MB of its pool, 0.1 s)
    SELECT s.name AS source, b.idp AS idp
    FROM sources s
    LEFT JOIN (SELECT DISTINCT app, idp FROM bindings) b ON b.app = substr(s.name, 5)
    WHERE s.role = 'app'
) ai
JOIN users a ON a.source = ai.source
LEFT JOIN links l ON l.app = substr(a.source, 5) AND l.sp_user_id = a.id
LEFT JOIN users i ON i.source = ai.idp AND i.id = l.idp_user_id
-- via_groups (for the current state, `scimsync sql` puts current/app_access.sql in place of what follows):
LEFT JOIN (
    SELECT b.app AS app, m.user_id AS user_id, group_concat(b.group_name, ', ') AS via_groups
    FROM bindings b
    JOIN memberships m ON m.source = b.idp AND m.group_id = b.idp_group_id
    GROUP BY b.app, m.user_id
) v ON v.app = substr(a.source, 5) AND v.user_id = l.idp_user_id
