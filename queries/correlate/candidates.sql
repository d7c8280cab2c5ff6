-- Correlation candidates: every (IdP user, app account) pair, both free (free.sql), that agree
-- on one of the app's `match` keys, trimmed and case-insensitive, with that key's rank in the
-- app's list (app_match, 1 first). Integer keys only (a new store has millions of candidates);
-- correlate/users.sql joins the ids to the chosen ones.
-- Materialised once per plan: chosen.sql reads it twice (DataFusion would otherwise run the
-- three key joins once per read).
-- Output columns: app, idp_uid, sp_uid, matched_by, rank
WITH idp_free AS (SELECT * FROM free WHERE side = 'idp'),
sp_free AS (SELECT * FROM free WHERE side = 'sp'),
matches AS (
    SELECT i.app, i.uid AS idp_uid, s.uid AS sp_uid, 'externalId' AS matched_by
    FROM idp_free i JOIN sp_free s ON s.app = i.app AND s.external_id_key = i.external_id_key
    UNION ALL
    SELECT i.app, i.uid, s.uid, 'userName'
    FROM idp_free i JOIN sp_free s ON s.app = i.app AND s.user_name_key = i.user_name_key
    UNION ALL
    SELECT i.app, i.uid, s.uid, 'email'
    FROM idp_free i JOIN sp_free s ON s.app = i.app AND s.email_key = i.email_key
)
SELECT c.app, c.idp_uid, c.sp_uid, c.matched_by, m.rank
FROM matches c JOIN app_match m ON m.app = c.app AND m.key = c.matched_by
