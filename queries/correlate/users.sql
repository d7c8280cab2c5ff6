-- Correlates IdP users with app accounts: the `links` every drift query reads.
-- An existing link wins while its app account exists (even if its IdP user is gone: the
-- account is then orphaned, not unmanaged). Otherwise candidates are matched on the app's
-- `match` keys (app_match, lowest rank first), trimmed and case-insensitive; only a match that
-- is unique both ways becomes a link. Anything else is a conflict, never a guess.
-- Reads `prior` (prior.sql: the stored links whose app account still exists) and `free`
-- (free.sql: the users no stored link holds).
-- Output columns (the planner's contract):
--   app, idp_uid, sp_uid, idp_user_id, sp_user_id, matched_by,
--   status: 'kept' | 'new' | 'idp_gone' (IdP user deleted) | 'conflict' (one row per candidate)
--   | 'pending' (created by apply, not listed by the app yet)
WITH idp_free AS (SELECT * FROM free WHERE side = 'idp'),
sp_free AS (SELECT * FROM free WHERE side = 'sp'),
-- Candidates carry integer keys only (a new store has millions); the ids are joined to the
-- chosen ones at the end.
candidates AS (
    SELECT i.app, i.uid AS idp_uid, s.uid AS sp_uid, 'externalId' AS matched_by
    FROM idp_free i JOIN sp_free s ON s.app = i.app AND s.external_id_key = i.external_id_key
    UNION ALL
    SELECT i.app, i.uid, s.uid, 'userName'
    FROM idp_free i JOIN sp_free s ON s.app = i.app AND s.user_name_key = i.user_name_key
    UNION ALL
    SELECT i.app, i.uid, s.uid, 'email'
    FROM idp_free i JOIN sp_free s ON s.app = i.app AND s.email_key = i.email_key
),
ranked AS (
    SELECT c.app, c.idp_uid, c.sp_uid, c.matched_by, m.rank
    FROM candidates c JOIN app_match m ON m.app = c.app AND m.key = c.matched_by
),
best AS (SELECT app, idp_uid, MIN(rank) AS rank FROM ranked GROUP BY app, idp_uid),
chosen AS (
    SELECT r.app, r.idp_uid, r.sp_uid, r.matched_by
    FROM ranked r JOIN best b ON b.app = r.app AND b.idp_uid = r.idp_uid AND b.rank = r.rank
),
per_idp AS (SELECT app, idp_uid, COUNT(*) AS n FROM chosen GROUP BY app, idp_uid),
per_sp AS (SELECT app, sp_uid, COUNT(*) AS n FROM chosen GROUP BY app, sp_uid)
SELECT app, idp_uid, sp_uid, idp_user_id, sp_user_id, matched_by,
       CASE WHEN sp_uid IS NULL THEN 'pending' WHEN idp_uid IS NULL THEN 'idp_gone' ELSE 'kept' END AS status
FROM prior
UNION ALL
SELECT c.app, c.idp_uid, c.sp_uid, i.id AS idp_user_id, s.id AS sp_user_id, c.matched_by,
       CASE WHEN pi.n = 1 AND ps.n = 1 THEN 'new' ELSE 'conflict' END AS status
FROM chosen c
JOIN per_idp pi ON pi.app = c.app AND pi.idp_uid = c.idp_uid
JOIN per_sp ps ON ps.app = c.app AND ps.sp_uid = c.sp_uid
JOIN idp_free i ON i.app = c.app AND i.uid = c.idp_uid
JOIN sp_free s ON s.app = c.app AND s.uid = c.sp_uid
