-- user.conflict: correlation could not decide. One row per (IdP user, candidate account):
-- several accounts match one IdP user on its best key, or one account is claimed by several
-- IdP users. attribute = the key that matched, old_value = the candidate's userName.
-- Corrective operation: profile-specific, or a person decides.
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
SELECT l.app, 'user.conflict' AS kind, i.user_name AS subject, i.id AS idp_id, s.id AS sp_id,
       l.matched_by AS attribute, s.user_name AS old_value, CAST(NULL AS VARCHAR) AS new_value,
       'several accounts match, or one account matches several IdP users' AS detail
FROM links l
JOIN apps a ON a.app = l.app
JOIN users i ON i.uid = l.idp_uid
JOIN users s ON s.uid = l.sp_uid
WHERE l.status = 'conflict'
