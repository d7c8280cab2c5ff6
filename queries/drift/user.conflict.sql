-- user.conflict: correlation could not decide. One row per (IdP user, candidate account):
-- several accounts match one IdP user on its best key, or one account is claimed by several
-- IdP users, or an inactive account matches only by email (a reused address: never linked
-- unless the app sets reactivate_by_email). attribute = the key that matched, old_value = the
-- candidate's userName.
-- Corrective operation: profile-specific, or a person decides.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
SELECT l.app, 'user.conflict' AS kind, i.user_name AS subject, i.id AS idp_id, s.id AS sp_id,
       l.matched_by AS attribute, s.user_name AS old_value, CAST(NULL AS VARCHAR) AS new_value,
       CASE WHEN l.matched_by = 'email' AND NOT s.active
            THEN 'an inactive account matches only by email: a departed person''s account, not linked (reactivate_by_email = true links it)'
            ELSE 'several accounts match, or one account matches several IdP users' END AS detail
FROM links l
JOIN apps a ON a.app = l.app
JOIN users i ON i.uid = l.idp_uid
JOIN users s ON s.uid = l.sp_uid
WHERE l.status = 'conflict'
