-- The linked pairs (linked_pairs.sql) a drift query can report on: those whose account is
-- inactive (user.reactivate), or whose sides differ in an attribute user.drift compares
-- (where the IdP has a value: the app's value missing, different, or different from the IdP's
-- lower-cased, for userName and email, which an app may hold lower-case); every pair of an app
-- with roles (user.role_mismatch compares the role of each) or attribute mappings (compared by
-- the mapped queries). A superset of what those queries report: each applies its own exact
-- condition. At 1M users a side, 19k of 953k pairs instead of every one (290 MiB held by the
-- plan while the drift queries ran). Materialised as `pairs`; read by user.drift,
-- user.reactivate, user.role_mismatch and the mapped queries.
-- Output columns: those of linked_pairs.sql.
SELECT p.* FROM linked_pairs p
WHERE NOT p.s_active
   OR p.app IN (SELECT app FROM app_roles)
   OR p.app IN (SELECT app FROM mapped_apps)
   OR (p.i_user_name IS NOT NULL AND (p.s_user_name IS NULL OR p.s_user_name <> p.i_user_name OR p.s_user_name <> lower(p.i_user_name)))
   OR (p.i_email IS NOT NULL AND (p.s_email IS NULL OR p.s_email <> p.i_email OR p.s_email <> lower(p.i_email)))
   OR (p.i_external_id IS NOT NULL AND (p.s_external_id IS NULL OR p.s_external_id <> p.i_external_id))
   OR (p.i_given_name IS NOT NULL AND (p.s_given_name IS NULL OR p.s_given_name <> p.i_given_name))
   OR (p.i_family_name IS NOT NULL AND (p.s_family_name IS NULL OR p.s_family_name <> p.i_family_name))
   OR (p.i_display_name IS NOT NULL AND (p.s_display_name IS NULL OR p.s_display_name <> p.i_display_name))
   OR (p.i_title IS NOT NULL AND (p.s_title IS NULL OR p.s_title <> p.i_title))
   OR (p.i_phone IS NOT NULL AND (p.s_phone IS NULL OR p.s_phone <> p.i_phone))
   OR (p.i_timezone IS NOT NULL AND (p.s_timezone IS NULL OR p.s_timezone <> p.i_timezone))
