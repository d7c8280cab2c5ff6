-- latest_findings: the findings of the latest successful plan that covered each app (a plan of
-- all apps, or of that app alone). An app in sync has no rows here.
-- Columns: run_id, app, kind, subject, detail, idp_id, sp_id, attribute, old_value, new_value
-- Read from finding_rows, not the findings view: a plan that found what the plan before it found
-- keeps no rows of its own (runs.findings_of names the plan that holds them), and the view
-- repeats those rows for every plan sharing them (at 1M users, 60 kept plans were 16.8M rows to
-- read for 274k, and DataFusion, with no row count for a view, hashed them all). The latest plan
-- of each app (a row per app) is written first: DataFusion builds on it and streams the stored
-- rows through it once there are more than a million of them (fewer may be hashed).
WITH lp AS (
    SELECT a.app AS app, max(r.id) AS run_id
    FROM (SELECT DISTINCT substr(name, 5) AS app FROM sources WHERE role = 'app') a
    JOIN runs r ON r.kind = 'plan' AND r.status = 'ok' AND (r.source IS NULL OR r.source = 'app.' || a.app)
    GROUP BY a.app
),
holder AS (
    -- The plan whose rows are the latest plan's: itself, and the plan it shares them with.
    SELECT lp.app AS app, lp.run_id AS run_id, lp.run_id AS rows_of FROM lp
    UNION ALL
    SELECT lp.app AS app, lp.run_id AS run_id, r.findings_of AS rows_of
    FROM lp JOIN runs r ON r.id = lp.run_id
    WHERE r.findings_of IS NOT NULL
)
SELECT h.run_id AS run_id, f.app AS app, f.kind AS kind, f.subject AS subject, f.detail AS detail,
       f.idp_id AS idp_id, f.sp_id AS sp_id, f.attribute AS attribute, f.old_value AS old_value,
       f.new_value AS new_value
FROM holder h
JOIN finding_rows f ON f.app = h.app AND f.run_id = h.rows_of
