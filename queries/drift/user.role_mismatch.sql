-- user.role_mismatch: the role the IdP gives (the app's `roles` mapping: role → IdP group;
-- a member of several role groups gets the highest, app_roles.rank 1 first) differs from the
-- role the app holds (case-insensitive). Users in no role group get the app's default role
-- and are not reported. Reads `pairs`, and role groups' members from active_members (a user
-- in scope is active). Corrective operation: the role change as the profile conveys roles.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
WITH role_members AS (
    SELECT sc.app, sc.uid, r.role, r.rank
    FROM scope sc
    JOIN apps a ON a.app = sc.app
    JOIN app_roles r ON r.app = sc.app
    JOIN groups g ON g.source = a.idp_source AND g.display_name = r.group_name
    JOIN active_members m ON m.gid = g.gid AND m.uid = sc.uid
),
best AS (SELECT app, uid, MIN(rank) AS rank FROM role_members GROUP BY app, uid),
desired AS (
    SELECT DISTINCT rm.app, rm.uid, rm.role
    FROM role_members rm JOIN best b ON b.app = rm.app AND b.uid = rm.uid AND b.rank = rm.rank
)
SELECT d.app, 'user.role_mismatch' AS kind, p.subject, p.idp_id, p.sp_id,
       'role' AS attribute, p.s_role AS old_value, d.role AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM desired d
JOIN pairs p ON p.app = d.app AND p.idp_uid = d.uid
WHERE p.s_role IS NULL OR lower(p.s_role) <> lower(d.role)
