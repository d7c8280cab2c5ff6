-- Memberships of active users: (gid, uid). Loaded from the columnar copy when every source has
-- one; otherwise computed once per plan from memberships and users. Read by scope.sql and
-- group.members.sql.
-- Output columns: gid, uid
SELECT m.gid, m.uid
FROM memberships m
JOIN users u ON u.uid = m.uid
WHERE u.active
