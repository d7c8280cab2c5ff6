-- user.missing: an in-scope IdP user (active, direct member of a bound group) with no linked
-- app account and no correlation conflict. Corrective operation: POST /Users.
-- Output columns (every drift query): app, kind, subject, idp_id, sp_id, attribute,
--   old_value, new_value, detail. Here: subject = IdP userName, idp_id = IdP user id.
-- How: the in-scope users with no link are found first, on integer keys (a few thousand of a
-- million), and only they meet the users' names: joined first, the million in-scope rows with
-- their names were the anti-join's hash table (84 MB at 1M users).
WITH unlinked AS (
    SELECT sc.app, sc.uid
    FROM scope sc
    WHERE NOT EXISTS (SELECT 1 FROM links l WHERE l.app = sc.app AND l.idp_uid = sc.uid)
)
SELECT sc.app, 'user.missing' AS kind, i.user_name AS subject, i.id AS idp_id, CAST(NULL AS VARCHAR) AS sp_id,
       CAST(NULL AS VARCHAR) AS attribute, CAST(NULL AS VARCHAR) AS old_value, CAST(NULL AS VARCHAR) AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM unlinked sc
JOIN apps a ON a.app = sc.app
JOIN users i ON i.uid = sc.uid
