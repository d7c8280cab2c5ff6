-- The linked pairs (linked_pairs.sql) a drift query can report on, with both sides'
-- attributes: those whose account is inactive (user.reactivate), whose app has roles
-- (user.role_mismatch compares the role of each), or whose app side's comparison key differs
-- from the IdP side's: an attribute user.drift compares differs, or the IdP's userName or
-- email is not lower-case (an app that holds them lower-case reports that as drift). A superset of what those queries report: each
-- applies its own exact condition (a value the IdP lacks, where the app has one, differs here
-- and is no drift there). Only the keys of every pair are held, then the attributes of the
-- pairs kept: at 1M users a side, 19k of 953k; holding every pair's attributes cost the plan
-- 0.28 GiB at its peak. Materialised as `pairs`; read by user.drift, user.reactivate and
-- user.role_mismatch (the mapped queries read the linked pairs' keys themselves: see
-- src/engine/mapped.rs).
-- Output columns: app, idp_uid, sp_uid, subject, idp_id, sp_id, then i_<attribute> and
-- s_<attribute> for user_name, external_id, given_name, family_name, display_name, email,
-- title, phone, timezone; s_active, s_role
WITH reportable AS (
    SELECT p.app, p.idp_uid, p.sp_uid
    FROM linked_pairs p
    JOIN users s ON s.uid = p.sp_uid
    WHERE NOT s.active
       OR p.app IN (SELECT app FROM app_roles)
       OR p.idp_key <> comparison_key(s.user_name, false, s.email, false,
                                      s.external_id, s.given_name, s.family_name, s.display_name,
                                      s.title, s.phone, s.timezone)
)
SELECT r.app, r.idp_uid, r.sp_uid, i.user_name AS subject, i.id AS idp_id, s.id AS sp_id,
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
FROM reportable r
JOIN users i ON i.uid = r.idp_uid
JOIN users s ON s.uid = r.sp_uid
