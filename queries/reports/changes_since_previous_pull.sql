-- Changes since the previous pull.
-- Users and memberships added, changed or removed by each source's latest pull.
-- Columns: app (the app, or NULL for the IdP), source, object, id, name, change
WITH last AS (SELECT name AS source, last_pull_run AS run FROM sources),
ended AS (
    SELECT v.source, v.id, v.user_name FROM user_versions v JOIN last ON last.source = v.source AND v.ended_by_run = last.run
),
started AS (
    SELECT u.source, u.id, u.user_name FROM users u JOIN last ON last.source = u.source AND u.run_id = last.run
)
SELECT CASE WHEN source LIKE 'app.%' THEN substr(source, 5) END AS app, source, object, id, name, change
FROM (
    -- One full join, so that users and their versions are each read once.
    SELECT coalesce(s.source, e.source) AS source, 'user' AS object, coalesce(s.id, e.id) AS id,
           CASE WHEN s.id IS NULL THEN e.user_name ELSE s.user_name END AS name,
           CASE WHEN s.id IS NULL THEN 'removed' WHEN e.id IS NULL THEN 'added' ELSE 'changed' END AS change
    FROM started s FULL JOIN ended e ON e.source = s.source AND e.id = s.id
    UNION ALL
    -- On the run alone (a pull is of one source, and writes only that source's rows): the
    -- runs then reach the scan of every membership below the joins that give it its source.
    SELECT m.source, 'membership', m.group_id || ' ' || m.user_id, NULL, 'added'
    FROM memberships m JOIN last ON m.run_id = last.run
    UNION ALL
    SELECT v.source, 'membership', v.group_id || ' ' || v.user_id, NULL, 'removed'
    FROM membership_versions v JOIN last ON last.source = v.source AND v.ended_by_run = last.run
) c
ORDER BY source, object, change, id
