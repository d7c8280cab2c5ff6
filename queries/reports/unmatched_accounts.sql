-- App accounts never matched to an IdP user (no link): contractors, service accounts, strays.
-- Columns: app, account_id, account, account_email, account_active
SELECT app, account_id, account_user_name AS account, account_email, account_active
FROM app_access
WHERE access = 'unlinked'
ORDER BY app, account
