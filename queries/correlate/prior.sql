-- The stored links whose app account still exists, with the integer keys of both sides (the
-- IdP side is NULL when its user is gone). Materialised once per plan; read by correlate/users.sql.
-- Links carry the integer keys they were made with; the ids confirm them. A link `apply` made
-- whose account no pull has shown yet (sp_uid NULL: the app lists new accounts only after
-- their first sign-in) is kept with a NULL sp_uid: its IdP user is then neither missing nor free.
-- Output columns: app, matched_by, sp_uid, sp_user_id, idp_uid, idp_user_id
SELECT l.app, l.matched_by, s.uid AS sp_uid, s.id AS sp_user_id, i.uid AS idp_uid, l.idp_user_id
FROM prior_links l
JOIN users s ON s.uid = l.sp_uid AND s.id = l.sp_user_id
LEFT JOIN users i ON i.uid = l.idp_uid AND i.id = l.idp_user_id
UNION ALL
SELECT l.app, l.matched_by, CAST(NULL AS BIGINT) AS sp_uid, l.sp_user_id, i.uid AS idp_uid, l.idp_user_id
FROM prior_links l
LEFT JOIN users i ON i.uid = l.idp_uid AND i.id = l.idp_user_id
WHERE l.sp_uid IS NULL
