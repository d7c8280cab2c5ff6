-- For the planner, not a finding: the app account of each IdP user a group operation names
-- (registered as `named(app, user_id)`: the users group.members adds and the members of the
-- groups this plan creates), from the links this plan stores (every correlation link but a
-- conflict's candidates). An IdP user with no row has no account yet. Should two accounts be
-- linked to one IdP user, the greatest app id is taken: one answer, whatever the row order.
-- The engine finds these rows by looking each link up in a set of the users named
-- (src/engine/planner_inputs.rs); this query is their definition, compared with it by a
-- property test, and the `.slt` tests' view.
-- Output columns: app, user_id, sp_user_id.
SELECT n.app, n.user_id, MAX(l.sp_user_id) AS sp_user_id
FROM named n
JOIN links l ON l.app = n.app AND l.idp_user_id = n.user_id
WHERE l.status <> 'conflict'
GROUP BY n.app, n.user_id
