-- app_access, as `scimsync sql` plans it for the current state (no --at): the same columns and
-- rows as ../app_access.sql, with `via_groups` gathered over the store's integer keys (the
-- bound IdP groups' `gid`s and their `member_keys`, grouped by the IdP user's `uid`, which is
-- unique across sources) instead of the `memberships` view's text ids. DataFusion only:
-- member_keys is internal and keeps no history, so a query at an instant plans the portable
-- view. At 1M users, `report access_review` 6.3-7.1 s -> 4.6-4.8 s, and it still completes
-- with --memory-limit 600MiB.
SELECT
    substr(a.source, 5) AS app,
    a.id AS account_id,
    a.user_name AS account_user_name,
    a.email AS account_email,
    a.active AS account_active,
    a.role AS account_role,
    ai.idp AS idp,
    l.idp_user_id AS idp_user_id,
    i.user_name AS idp_user_name,
    i.email AS idp_email,
    i.active AS idp_active,
    l.matched_by AS matched_by,
    v.via_groups AS via_groups,
    CASE WHEN l.idp_user_id IS NULL THEN 'unlinked' ELSE 'linked' END AS access
FROM users a
JOIN sources s ON s.name = a.source AND s.role = 'app'
LEFT JOIN (SELECT DISTINCT app, idp FROM bindings) ai ON ai.app = substr(a.source, 5)
LEFT JOIN links l ON l.app = substr(a.source, 5) AND l.sp_user_id = a.id
LEFT JOIN users i ON i.source = ai.idp AND i.id = l.idp_user_id
LEFT JOIN (
    SELECT b.app AS app, k.uid AS uid, group_concat(b.group_name, ', ') AS via_groups
    FROM bindings b
    JOIN groups g ON g.source = b.idp AND g.id = b.idp_group_id
    JOIN member_keys k ON k.gid = g.gid
    GROUP BY b.app, k.uid
) v ON v.app = substr(a.source, 5) AND v.uid = i.uid
