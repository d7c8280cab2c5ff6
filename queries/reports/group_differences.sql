-- Group membership differences in each app (latest plan).
-- Members to add or remove, groups missing, renamed or orphaned, as the latest plan found them.
-- Ordered fully: removed members (no new value) are told apart by their detail.
-- Columns: app, kind, group_name, change, member, detail
SELECT app, kind, subject AS group_name, attribute AS change, new_value AS member, detail
FROM latest_findings
WHERE kind LIKE 'group.%'
ORDER BY app, group_name, kind, member, detail
