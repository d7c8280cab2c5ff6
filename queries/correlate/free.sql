-- The users correlation may still link: those of each app's IdP and of the app that no stored
-- link holds. Materialised once per plan (correlate/users.sql reads it three times).
-- The links are looked for on the users' keys alone, then the few users left are read whole:
-- read whole, both sides' 1M users were held in two hash tables (0.24 GiB at 1M).
-- Output columns: app, side ('idp' | 'sp'), uid, id, external_id_key, user_name_key, email_key, active
WITH unlinked AS (
    SELECT a.app, 'idp' AS side, u.uid
    FROM apps a JOIN users u ON u.source = a.idp_source
    WHERE NOT EXISTS (SELECT 1 FROM prior p WHERE p.app = a.app AND p.idp_uid = u.uid)
    UNION ALL
    SELECT a.app, 'sp' AS side, u.uid
    FROM apps a JOIN users u ON u.source = a.app_source
    WHERE NOT EXISTS (SELECT 1 FROM prior p WHERE p.app = a.app AND p.sp_uid = u.uid)
)
SELECT f.app, f.side, u.uid, u.id, u.external_id_key, u.user_name_key, u.email_key, u.active
FROM unlinked f JOIN users u ON u.uid = f.uid
