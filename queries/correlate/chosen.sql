-- Each free IdP user's candidates (candidates.sql) on its best-ranked key: one row per
-- candidate, so two rows for one user (or one account) mean a conflict, never a guess.
-- Materialised once per plan: correlate/users.sql reads it three times.
-- Output columns: app, idp_uid, sp_uid, matched_by
WITH best AS (SELECT app, idp_uid, MIN(rank) AS rank FROM candidates GROUP BY app, idp_uid)
SELECT c.app, c.idp_uid, c.sp_uid, c.matched_by
FROM candidates c JOIN best b ON b.app = c.app AND b.idp_uid = c.idp_uid AND b.rank = c.rank
