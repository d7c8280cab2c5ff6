-- Correlates IdP users with app accounts: the `links` every drift query reads.
-- An existing link wins while its app account exists (even if its IdP user is gone: the
-- account is then orphaned, not unmanaged). Otherwise candidates are matched on the app's
-- `match` keys (candidates.sql), lowest rank first (chosen.sql); only a match that is unique
-- both ways becomes a link. Anything else is a conflict, never a guess.
-- Reads `prior` (prior.sql: the stored links whose app account still exists), `free`
-- (free.sql: the users no stored link holds) and `chosen` (chosen.sql).
-- The engine computes these rows itself (src/engine/user_links.rs, without the joins): this
-- query, over free.sql, candidates.sql and chosen.sql, is their definition (a property test
-- compares the two) and runs when the users' keys are not dense and unique.
-- Output columns (the planner's contract):
--   app, idp_uid, sp_uid, idp_user_id, sp_user_id, matched_by,
--   status: 'kept' | 'new' | 'idp_gone' (IdP user deleted) | 'conflict' (one row per candidate)
--   | 'pending' (created by apply, not listed by the app yet)
WITH per_idp AS (SELECT app, idp_uid, COUNT(*) AS n FROM chosen GROUP BY app, idp_uid),
per_sp AS (SELECT app, sp_uid, COUNT(*) AS n FROM chosen GROUP BY app, sp_uid)
SELECT app, idp_uid, sp_uid, idp_user_id, sp_user_id, matched_by,
       CASE WHEN sp_uid IS NULL THEN 'pending' WHEN idp_uid IS NULL THEN 'idp_gone' ELSE 'kept' END AS status
FROM prior
UNION ALL
SELECT c.app, c.idp_uid, c.sp_uid, i.id AS idp_user_id, s.id AS sp_user_id, c.matched_by,
       CASE WHEN c.matched_by = 'email' AND NOT s.active AND COALESCE(r.policy, 'conflict') = 'conflict' THEN 'conflict'
            WHEN pi.n = 1 AND ps.n = 1 THEN 'new' ELSE 'conflict' END AS status
FROM chosen c
JOIN per_idp pi ON pi.app = c.app AND pi.idp_uid = c.idp_uid
JOIN per_sp ps ON ps.app = c.app AND ps.sp_uid = c.sp_uid
JOIN free i ON i.side = 'idp' AND i.app = c.app AND i.uid = c.idp_uid
JOIN free s ON s.side = 'sp' AND s.app = c.app AND s.uid = c.sp_uid
LEFT JOIN app_email_reuse r ON r.app = c.app
-- Reused emails: an inactive account that matches a new IdP user only by email is a departed
-- person's account, not a rehire. It is never linked (and so never reactivated or renamed)
-- unless the app opts in (policy 'reactivate'): it is a conflict ('conflict', the default), or
-- (policy 'release', Quip) not a candidate at all, so that the user is created after the old
-- account gives up the email.
WHERE NOT (c.matched_by = 'email' AND NOT s.active AND COALESCE(r.policy, 'conflict') = 'release')
