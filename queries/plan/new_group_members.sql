-- For the planner, not a finding: the members of each IdP group this plan creates in an app
-- (the groups group.missing found, registered as `creating(app, group_id)`), as IdP user ids,
-- for the POST /Groups bodies. A group is created with its active members (active_members.sql)
-- but those a user.conflict holds back, in key order.
-- The engine finds these rows by lookups (src/engine/planner_inputs/new_groups.rs) when the
-- keys suit an index; this query is their definition and the way taken when they do not.
-- Output columns: app, group_id, user_id.
SELECT c.app, c.group_id, u.id AS user_id
FROM creating c
JOIN apps a ON a.app = c.app
JOIN groups g ON g.source = a.idp_source AND g.id = c.group_id
JOIN active_members m ON m.gid = g.gid
JOIN users u ON u.uid = m.uid
-- A member a user.conflict holds back has no account to add.
WHERE NOT EXISTS (SELECT 1 FROM links l WHERE l.app = c.app AND l.idp_uid = m.uid AND l.status = 'conflict')
ORDER BY c.app, c.group_id, m.uid
