-- Admins in each app: accounts whose role, or an app group they belong to, names an admin.
-- Columns: app, account, account_active, role, admin_groups
SELECT substr(u.source, 5) AS app, u.user_name AS account, u.active AS account_active, u.role AS role,
       group_concat(g.display_name, ', ') AS admin_groups
FROM users u
JOIN sources s ON s.name = u.source AND s.role = 'app'
LEFT JOIN memberships m ON m.source = u.source AND m.user_id = u.id
LEFT JOIN groups g ON g.source = m.source AND g.id = m.group_id AND lower(g.display_name) LIKE '%admin%'
GROUP BY u.source, u.id, u.user_name, u.active, u.role
HAVING lower(coalesce(u.role, '')) LIKE '%admin%' OR count(g.id) > 0
ORDER BY app, account
