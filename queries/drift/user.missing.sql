-- user.missing: an in-scope IdP user (active, direct member of a bound group) with no linked
-- app account and no correlation conflict. Corrective operation: POST /Users.
-- Output columns (every drift query): app, kind, subject, idp_id, sp_id, attribute,
--   old_value, new_value, detail. Here: subject = IdP userName, idp_id = IdP user id.
SELECT sc.app, 'user.missing' AS kind, i.user_name AS subject, i.id AS idp_id, CAST(NULL AS VARCHAR) AS sp_id,
       CAST(NULL AS VARCHAR) AS attribute, CAST(NULL AS VARCHAR) AS old_value, CAST(NULL AS VARCHAR) AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM scope sc
JOIN apps a ON a.app = sc.app
JOIN users i ON i.uid = sc.uid
WHERE NOT EXISTS (SELECT 1 FROM links l WHERE l.app = sc.app AND l.idp_uid = sc.uid)
