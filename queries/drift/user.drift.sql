-- user.drift: a linked, in-scope account whose managed attribute differs from the IdP's.
-- One row per attribute: attribute = SCIM attribute name, old_value = the app's value,
-- new_value = the IdP's. Only attributes the app manages (app_attributes) are compared, and
-- only where the IdP has a value (an attribute the IdP leaves empty is not cleared in the app).
-- An attribute the app holds lower-case (app_attributes.lower: Whimsical's userName and email)
-- is compared with the IdP's value lower-cased.
-- Reads `pairs` (pairs.sql). Corrective operation: PATCH /Users/{id} replace.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
SELECT app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail FROM (
    SELECT p.app, 'user.drift' AS kind, p.subject, p.idp_id, p.sp_id, 'userName' AS attribute, p.s_user_name AS old_value,
           CASE WHEN aa.lower THEN lower(p.i_user_name) ELSE p.i_user_name END AS new_value, CAST(NULL AS VARCHAR) AS detail
    FROM pairs p JOIN app_attributes aa ON aa.app = p.app AND aa.attribute = 'userName'
    WHERE p.i_user_name IS NOT NULL
) d WHERE d.old_value IS NULL OR d.old_value <> d.new_value
UNION ALL
SELECT p.app, 'user.drift' AS kind, p.subject, p.idp_id, p.sp_id, 'externalId' AS attribute, p.s_external_id AS old_value, p.i_external_id AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM pairs p JOIN app_attributes aa ON aa.app = p.app AND aa.attribute = 'externalId'
WHERE p.i_external_id IS NOT NULL AND (p.s_external_id IS NULL OR p.s_external_id <> p.i_external_id)
UNION ALL
SELECT p.app, 'user.drift' AS kind, p.subject, p.idp_id, p.sp_id, 'name.givenName' AS attribute, p.s_given_name AS old_value, p.i_given_name AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM pairs p JOIN app_attributes aa ON aa.app = p.app AND aa.attribute = 'name.givenName'
WHERE p.i_given_name IS NOT NULL AND (p.s_given_name IS NULL OR p.s_given_name <> p.i_given_name)
UNION ALL
SELECT p.app, 'user.drift' AS kind, p.subject, p.idp_id, p.sp_id, 'name.familyName' AS attribute, p.s_family_name AS old_value, p.i_family_name AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM pairs p JOIN app_attributes aa ON aa.app = p.app AND aa.attribute = 'name.familyName'
WHERE p.i_family_name IS NOT NULL AND (p.s_family_name IS NULL OR p.s_family_name <> p.i_family_name)
UNION ALL
SELECT p.app, 'user.drift' AS kind, p.subject, p.idp_id, p.sp_id, 'displayName' AS attribute, p.s_display_name AS old_value, p.i_display_name AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM pairs p JOIN app_attributes aa ON aa.app = p.app AND aa.attribute = 'displayName'
WHERE p.i_display_name IS NOT NULL AND (p.s_display_name IS NULL OR p.s_display_name <> p.i_display_name)
UNION ALL
SELECT app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail FROM (
    SELECT p.app, 'user.drift' AS kind, p.subject, p.idp_id, p.sp_id, 'email' AS attribute, p.s_email AS old_value,
           CASE WHEN aa.lower THEN lower(p.i_email) ELSE p.i_email END AS new_value, CAST(NULL AS VARCHAR) AS detail
    FROM pairs p JOIN app_attributes aa ON aa.app = p.app AND aa.attribute = 'email'
    WHERE p.i_email IS NOT NULL
) d WHERE d.old_value IS NULL OR d.old_value <> d.new_value
UNION ALL
SELECT p.app, 'user.drift' AS kind, p.subject, p.idp_id, p.sp_id, 'title' AS attribute, p.s_title AS old_value, p.i_title AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM pairs p JOIN app_attributes aa ON aa.app = p.app AND aa.attribute = 'title'
WHERE p.i_title IS NOT NULL AND (p.s_title IS NULL OR p.s_title <> p.i_title)
UNION ALL
SELECT p.app, 'user.drift' AS kind, p.subject, p.idp_id, p.sp_id, 'phone' AS attribute, p.s_phone AS old_value, p.i_phone AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM pairs p JOIN app_attributes aa ON aa.app = p.app AND aa.attribute = 'phone'
WHERE p.i_phone IS NOT NULL AND (p.s_phone IS NULL OR p.s_phone <> p.i_phone)
UNION ALL
SELECT p.app, 'user.drift' AS kind, p.subject, p.idp_id, p.sp_id, 'timezone' AS attribute, p.s_timezone AS old_value, p.i_timezone AS new_value, CAST(NULL AS VARCHAR) AS detail
FROM pairs p JOIN app_attributes aa ON aa.app = p.app AND aa.attribute = 'timezone'
WHERE p.i_timezone IS NOT NULL AND (p.s_timezone IS NULL OR p.s_timezone <> p.i_timezone)
