-- The linked in-scope pairs: a link kept or made by this plan whose IdP user is in the app's
-- scope, with the comparison key of the IdP side's attributes that user.drift compares
-- (`comparison_key`, a digest: two keys are equal only when every value is). userName and
-- email are each followed by whether the IdP's value is not its own lower case, where the app
-- side (pairs.sql) passes false: an app that holds them lower-cased reports an upper-case IdP
-- value as drift even when both sides hold it the same, so such a pair must never compare
-- equal. A view, never materialised: pairs.sql keeps the pairs whose sides' keys differ.
-- Output columns: app, idp_uid, sp_uid, idp_key
SELECT l.app, l.idp_uid, l.sp_uid,
       comparison_key(i.user_name, COALESCE(i.user_name <> lower(i.user_name), false),
                      i.email, COALESCE(i.email <> lower(i.email), false),
                      i.external_id, i.given_name, i.family_name, i.display_name,
                      i.title, i.phone, i.timezone) AS idp_key
FROM links l
JOIN scope sc ON sc.app = l.app AND sc.uid = l.idp_uid
JOIN users i ON i.uid = l.idp_uid
WHERE l.status IN ('kept', 'new')
