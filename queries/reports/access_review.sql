-- Access review per app: every app account, who it belongs to in the IdP and why they have it.
-- Columns: app, account (userName), account_active, account_role, idp_user, idp_active,
--   granted_by (bound IdP groups the user is a direct member of), access (linked/unlinked)
SELECT app, account_user_name AS account, account_active, account_role,
       idp_user_name AS idp_user, idp_active, via_groups AS granted_by, access
FROM app_access
ORDER BY app, account
