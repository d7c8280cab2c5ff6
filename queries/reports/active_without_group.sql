-- Active in an app but in no bound group.
-- Accounts the IdP does not grant: unlinked accounts, or IdP users outside every group bound
-- to the app.
-- Columns: app, account, account_email, idp_user, access
SELECT app, account_user_name AS account, account_email, idp_user_name AS idp_user, access
FROM app_access
WHERE account_active = 1 AND via_groups IS NULL
ORDER BY app, account
