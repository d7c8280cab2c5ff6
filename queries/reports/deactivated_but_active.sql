-- Deactivated in the IdP but active in an app: accounts whose IdP user is inactive or gone.
-- Columns: app, account, account_email, idp_user_id, idp_user, why
SELECT app, account_user_name AS account, account_email, idp_user_id, idp_user_name AS idp_user,
       CASE WHEN idp_user_name IS NULL THEN 'gone from the IdP' ELSE 'inactive in the IdP' END AS why
FROM app_access
WHERE account_active = 1 AND access = 'linked' AND (idp_active = 0 OR idp_user_name IS NULL)
ORDER BY app, account
