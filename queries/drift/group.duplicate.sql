-- group.duplicate: two or more groups of one app carry the same name (trimmed, case-insensitive)
-- or the same externalId. Left by two writers, or a create whose answer was lost: a person
-- decides which one stays, so no operation is planned (like user.conflict), but the plan says
-- so instead of looking in sync. One row per group of each duplicated set;
-- attribute = displayName | externalId, old_value = the shared value, detail = how many.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
WITH app_groups AS (
    SELECT a.app, g.id, g.display_name, g.name_key, g.external_id
    FROM apps a JOIN groups g ON g.source = a.app_source
),
by_name AS (
    SELECT app, name_key, COUNT(*) AS n FROM app_groups GROUP BY app, name_key HAVING COUNT(*) > 1
),
by_external_id AS (
    SELECT app, external_id, COUNT(*) AS n FROM app_groups WHERE external_id IS NOT NULL GROUP BY app, external_id HAVING COUNT(*) > 1
)
SELECT g.app, 'group.duplicate' AS kind, g.display_name AS subject, CAST(NULL AS VARCHAR) AS idp_id, g.id AS sp_id,
       'displayName' AS attribute, g.display_name AS old_value, CAST(NULL AS VARCHAR) AS new_value,
       CAST(d.n AS VARCHAR) || ' app groups carry this name' AS detail
FROM app_groups g JOIN by_name d ON d.app = g.app AND d.name_key = g.name_key
UNION ALL
SELECT g.app, 'group.duplicate' AS kind, g.display_name AS subject, CAST(NULL AS VARCHAR) AS idp_id, g.id AS sp_id,
       'externalId' AS attribute, g.external_id AS old_value, CAST(NULL AS VARCHAR) AS new_value,
       CAST(d.n AS VARCHAR) || ' app groups carry this externalId' AS detail
FROM app_groups g JOIN by_external_id d ON d.app = g.app AND d.external_id = g.external_id
