-- user.orphaned ("orphaned deactivation"): a linked app account that is still active (or, with
-- on_unassign = "delete", still present) while its IdP user is deleted, inactive, or in no
-- bound group. "In no bound group" is withheld for an app whose scope is incomplete
-- (apps.scope_complete false: a bound group that is gone, a name the IdP never had, or no
-- bindings pulled yet): the missing group may hold the user. A user deleted or inactive in the
-- IdP is orphaned whatever the scope. Never with on_unassign = "ignore". App accounts that
-- match no IdP user are never orphaned.
-- Where DELETE only deactivates (Quip), an inactive account is done with.
-- detail = why. Corrective operation: PATCH active=false (or DELETE per on_unassign).
-- Output columns: app, kind, subject, idp_id, sp_id, attribute, old_value, new_value, detail.
-- How: the linked accounts whose IdP user is in no bound group of the app (or gone) are found
-- first, on the links' integer keys (22k of 975k at 1M users), and only they meet the users:
-- joined first, the 965k linked rows with both sides' names were the anti-join's hash table
-- (101 MB, beside the left join's 64 MB).
WITH unscoped AS (
    SELECT l.app, l.idp_user_id, l.idp_uid, l.sp_uid
    FROM links l
    WHERE l.status IN ('kept', 'new', 'idp_gone')
      AND NOT EXISTS (SELECT 1 FROM scope sc WHERE sc.app = l.app AND sc.uid = l.idp_uid)
)
SELECT l.app, 'user.orphaned' AS kind, s.user_name AS subject, l.idp_user_id AS idp_id, s.id AS sp_id,
       'active' AS attribute, CASE WHEN s.active THEN 'true' ELSE 'false' END AS old_value, 'false' AS new_value,
       CASE WHEN i.uid IS NULL THEN 'deleted in the IdP'
            WHEN NOT i.active THEN 'inactive in the IdP'
            ELSE 'in no bound group' END AS detail
FROM unscoped l
JOIN apps a ON a.app = l.app
JOIN users s ON s.uid = l.sp_uid
LEFT JOIN users i ON i.uid = l.idp_uid
WHERE (s.active OR (a.on_unassign = 'delete' AND a.delete_removes))
  AND a.on_unassign <> 'ignore'
  AND (a.scope_complete OR i.uid IS NULL OR NOT i.active)
