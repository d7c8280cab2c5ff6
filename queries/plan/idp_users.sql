-- For the planner, not a finding: the IdP users its operations need whole (registered as
-- `wanted(app, user_id)`: the users user.missing creates, and those whose given or family name
-- changes, since name.formatted is built from both), with the attributes a POST /Users sends.
-- Output columns: app, id, user_name, external_id, given_name, family_name, formatted,
--   display_name, email, active, title, phone, timezone, role.
SELECT w.app, u.id, u.user_name, u.external_id, u.given_name, u.family_name, u.formatted,
       u.display_name, u.email, u.active, u.title, u.phone, u.timezone, u.role
FROM wanted w
JOIN apps a ON a.app = w.app
JOIN users u ON u.source = a.idp_source AND u.id = w.user_id
