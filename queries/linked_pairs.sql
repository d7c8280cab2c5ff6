-- Linked, in-scope pairs: each IdP user in scope with the app account linked to it, their
-- attributes side by side. Not materialised: pairs.sql keeps those of its rows a drift query
-- can report on, and the engine materialises that.
-- Output columns: app, idp_uid, sp_uid, subject (IdP userName), idp_id, sp_id,
--   i_<attr> / s_<attr> for user_name, external_id, given_name, family_name, display_name,
--   email, title, phone, timezone; s_active, s_role.
SELECT l.app, l.idp_uid, l.sp_uid, i.user_name AS subject, i.id AS idp_id, s.id AS sp_id,
       i.user_name AS i_user_name, s.user_name AS s_user_name,
       i.external_id AS i_external_id, s.external_id AS s_external_id,
       i.given_name AS i_given_name, s.given_name AS s_given_name,
       i.family_name AS i_family_name, s.family_name AS s_family_name,
       i.display_name AS i_display_name, s.display_name AS s_display_name,
       i.email AS i_email, s.email AS s_email,
       i.title AS i_title, s.title AS s_title,
       i.phone AS i_phone, s.phone AS s_phone,
       i.timezone AS i_timezone, s.timezone AS s_timezone,
       s.active AS s_active, s.role AS s_role
FROM links l
JOIN scope sc ON sc.app = l.app AND sc.uid = l.idp_uid
JOIN users i ON i.uid = l.idp_uid
JOIN users s ON s.uid = l.sp_uid
WHERE l.status IN ('kept', 'new')
