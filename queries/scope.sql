-- Scope: an IdP user is in scope for an app when active in the IdP and a direct member of a
-- group bound to the app. Nested groups are not followed (JumpCloud and Entra assign apps to
-- direct members; Okta groups do not nest; SCIM and file sources list direct members).
-- Reads active_members (active_members.sql).
-- Output columns: app, uid (the IdP user's integer key)
SELECT DISTINCT a.app, m.uid
FROM apps a
JOIN bindings b ON b.app = a.app AND b.idp = a.idp_source
JOIN groups g ON g.source = a.idp_source AND g.id = b.idp_group_id
JOIN active_members m ON m.gid = g.gid
