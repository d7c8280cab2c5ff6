-- app_access's via_groups for the current state (no --at): `scimsync sql` plans ../app_access.sql
-- with this in place of the part its `-- via_groups` line opens, so the view keeps its columns
-- and rows. It gathers the bound IdP groups' `gid`s and their `member_keys`, grouped by the IdP
-- user's `uid` (unique across sources), instead of joining the `memberships` view's text ids.
-- DataFusion only: member_keys is internal and keeps no history, so a query at an instant plans
-- the portable view whole. At 1M users, `report access_review` 6.3-7.1 s -> 4.6-4.8 s, and it
-- still completes with --memory-limit 600MiB.
LEFT JOIN (
    SELECT b.app AS app, k.uid AS uid, group_concat(b.group_name, ', ') AS via_groups
    FROM bindings b
    JOIN groups g ON g.source = b.idp AND g.id = b.idp_group_id
    JOIN member_keys k ON k.gid = g.gid
    GROUP BY b.app, k.uid
) v ON v.app = substr(a.source, 5) AND v.uid = i.uid
