-- user.reactivate: an in-scope IdP user whose linked app account is inactive.
-- Corrective operation: PATCH active=true.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
SELECT l.app, 'user.reactivate' AS kind, i.user_name AS subject, i.id AS idp_id, s.id AS sp_id,
       'active' AS attribute, 'false' AS old_value, 'true' AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM links l
JOIN scope sc ON sc.app = l.app AND sc.uid = l.idp_uid
JOIN apps a ON a.app = l.app
JOIN users i ON i.source = a.idp_source AND i.uid = l.idp_uid
JOIN users s ON s.source = a.app_source AND s.uid = l.sp_uid
WHERE l.status IN ('kept', 'new') AND NOT s.active
