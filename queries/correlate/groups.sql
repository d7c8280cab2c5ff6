-- Correlates bound IdP groups with app groups: the `group_links` the group queries read.
-- An existing link wins while its app group exists. A bound IdP group with no link takes over
-- an unlinked app group of the same name (trimmed, case-insensitive) when that match is unique
-- both ways (seed: "takes over management of existing groups … when the user group name …
-- matches"). Only apps with manage_groups take groups over.
-- Output columns: app, idp_gid, sp_gid, idp_group_id, sp_group_id, matched_by,
--   status: 'kept' | 'takeover' | 'idp_gone' (IdP group deleted)
WITH prior AS (
    SELECT l.app, l.matched_by, s.gid AS sp_gid, s.id AS sp_group_id, i.gid AS idp_gid, l.idp_group_id
    FROM prior_group_links l
    JOIN groups s ON s.gid = l.sp_gid AND s.id = l.sp_group_id
    LEFT JOIN groups i ON i.gid = l.idp_gid AND i.id = l.idp_group_id
),
bound AS (
    SELECT DISTINCT a.app, g.gid, g.id, g.name_key
    FROM apps a
    JOIN bindings b ON b.app = a.app AND b.idp = a.idp_source
    JOIN groups g ON g.source = a.idp_source AND g.id = b.idp_group_id
    WHERE a.manage_groups
      AND NOT EXISTS (SELECT 1 FROM prior p WHERE p.app = a.app AND p.idp_group_id = g.id)
),
sp_free AS (
    SELECT a.app, g.gid, g.id, g.name_key
    FROM apps a JOIN groups g ON g.source = a.app_source
    WHERE NOT EXISTS (SELECT 1 FROM prior p WHERE p.app = a.app AND p.sp_gid = g.gid)
),
candidates AS (
    SELECT b.app, b.gid AS idp_gid, b.id AS idp_group_id, s.gid AS sp_gid, s.id AS sp_group_id
    FROM bound b JOIN sp_free s ON s.app = b.app AND s.name_key = b.name_key
),
per_idp AS (SELECT app, idp_gid, COUNT(*) AS n FROM candidates GROUP BY app, idp_gid),
per_sp AS (SELECT app, sp_gid, COUNT(*) AS n FROM candidates GROUP BY app, sp_gid)
SELECT app, idp_gid, sp_gid, idp_group_id, sp_group_id, matched_by,
       CASE WHEN idp_gid IS NULL THEN 'idp_gone' ELSE 'kept' END AS status
FROM prior
UNION ALL
SELECT c.app, c.idp_gid, c.sp_gid, c.idp_group_id, c.sp_group_id, 'name' AS matched_by, 'takeover' AS status
FROM candidates c
JOIN per_idp pi ON pi.app = c.app AND pi.idp_gid = c.idp_gid AND pi.n = 1
JOIN per_sp ps ON ps.app = c.app AND ps.sp_gid = c.sp_gid AND ps.n = 1
