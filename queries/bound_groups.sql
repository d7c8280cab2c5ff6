-- bound_groups: each app's bound IdP groups, by integer key: the joins scope.sql starts with.
-- The engine computes `scope` from these and active_members itself (src/engine/scope.rs);
-- scope.sql is its definition.
-- Output columns: app, gid
SELECT a.app, g.gid
FROM apps a
JOIN bindings b ON b.app = a.app AND b.idp = a.idp_source
JOIN groups g ON g.source = a.idp_source AND g.id = b.idp_group_id
