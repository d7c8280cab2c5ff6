-- user.unmanaged: an app account linked to no IdP user and matching none (an import
-- candidate). Never changed by scimsync. Corrective operation: none.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
-- How: the unlinked accounts are found first, on integer keys, and only they meet the
-- accounts' names (joined first, every account's name was the anti-join's hash table).
WITH unlinked AS (
    SELECT a.app, s.uid
    FROM apps a
    JOIN users s ON s.source = a.app_source
    WHERE NOT EXISTS (SELECT 1 FROM links l WHERE l.app = a.app AND l.sp_uid = s.uid)
)
SELECT x.app, 'user.unmanaged' AS kind, s.user_name AS subject, CAST(NULL AS VARCHAR) AS idp_id, s.id AS sp_id,
       CAST(NULL AS VARCHAR) AS attribute, CAST(NULL AS VARCHAR) AS old_value, CAST(NULL AS VARCHAR) AS new_value,
       CASE WHEN s.active THEN 'active' ELSE 'inactive' END AS detail
FROM unlinked x
JOIN users s ON s.uid = x.uid
