-- latest_findings: the findings of the latest successful plan that covered each app (a plan of
-- all apps, or of that app alone). An app in sync has no rows here.
-- Columns: run_id, app, kind, subject, detail, idp_id, sp_id, attribute, old_value, new_value
SELECT f.run_id AS run_id, f.app AS app, f.kind AS kind, f.subject AS subject, f.detail AS detail,
       f.idp_id AS idp_id, f.sp_id AS sp_id, f.attribute AS attribute, f.old_value AS old_value,
       f.new_value AS new_value
FROM findings f
JOIN (
    SELECT a.app AS app, max(r.id) AS run_id
    FROM (SELECT DISTINCT substr(name, 5) AS app FROM sources WHERE role = 'app') a
    JOIN runs r ON r.kind = 'plan' AND r.status = 'ok' AND (r.source IS NULL OR r.source = 'app.' || a.app)
    GROUP BY a.app
) lp ON lp.app = f.app AND lp.run_id = f.run_id
