-- user.reactivate: an in-scope IdP user whose linked app account is inactive. Reads `pairs`.
-- Corrective operation: PATCH active=true.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
SELECT p.app, 'user.reactivate' AS kind, p.subject, p.idp_id, p.sp_id,
       'active' AS attribute, 'false' AS old_value, 'true' AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM pairs p
WHERE NOT p.s_active
