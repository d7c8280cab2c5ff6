-- idp_vs_app: the two sides of every linked user side by side (IdP value, app value), as of
-- the last pulls and the last plan's correlation.
-- Columns: app, idp, idp_user_id, account_id, matched_by, then idp_/app_ pairs of user_name,
--   email, given_name, family_name, display_name, title, active (1/0), attributes (the JSON
--   object of further attributes: read one with json_extract(idp_attributes, '$.department')),
--   and app_role.
SELECT
    l.app AS app,
    i.source AS idp,
    l.idp_user_id AS idp_user_id,
    l.sp_user_id AS account_id,
    l.matched_by AS matched_by,
    i.user_name AS idp_user_name,
    a.user_name AS app_user_name,
    i.email AS idp_email,
    a.email AS app_email,
    i.given_name AS idp_given_name,
    a.given_name AS app_given_name,
    i.family_name AS idp_family_name,
    a.family_name AS app_family_name,
    i.display_name AS idp_display_name,
    a.display_name AS app_display_name,
    i.title AS idp_title,
    a.title AS app_title,
    i.active AS idp_active,
    a.active AS app_active,
    i.attributes AS idp_attributes,
    a.attributes AS app_attributes,
    a.role AS app_role
FROM links l
JOIN users a ON a.source = 'app.' || l.app AND a.id = l.sp_user_id
JOIN (SELECT DISTINCT app, idp FROM bindings) ai ON ai.app = l.app
JOIN users i ON i.source = ai.idp AND i.id = l.idp_user_id
