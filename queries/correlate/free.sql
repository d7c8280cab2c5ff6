-- The users correlation may still link: those of each app's IdP and of the app that no stored
-- link holds. Materialised once per plan (correlate/users.sql reads it three times).
-- Output columns: app, side ('idp' | 'sp'), uid, id, external_id_key, user_name_key, email_key, active
SELECT a.app, 'idp' AS side, u.uid, u.id, u.external_id_key, u.user_name_key, u.email_key, u.active
FROM apps a JOIN users u ON u.source = a.idp_source
WHERE NOT EXISTS (SELECT 1 FROM prior p WHERE p.app = a.app AND p.idp_uid = u.uid)
UNION ALL
SELECT a.app, 'sp' AS side, u.uid, u.id, u.external_id_key, u.user_name_key, u.email_key, u.active
FROM apps a JOIN users u ON u.source = a.app_source
WHERE NOT EXISTS (SELECT 1 FROM prior p WHERE p.app = a.app AND p.sp_uid = u.uid)
