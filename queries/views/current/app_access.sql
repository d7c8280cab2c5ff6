-- app_access's via_groups for the current state (no --at): `scimsync sql` plans ../app_access.sql
-- with this in place of the part its `-- via_groups` line opens, so the view keeps its columns
-- and rows. `current_via_groups` (internal, DataFusion only) has one row per app and IdP user
-- `uid` (unique across sources) with the names of the app's bound groups the user is a direct
-- member of, gathered from the bindings and `member_keys` by one operator
-- (src/audit/via_groups.rs) instead of a GROUP BY over the `memberships` view's text ids.
-- member_keys is internal and keeps no history, so a query at an instant plans the portable
-- view whole. At 1M users, `report access_review` 6.3-7.1 s (portable) -> 3.0-3.5 s (a
-- GROUP BY over member_keys) -> see the README's Performance section and docs/performance-log.md.
LEFT JOIN current_via_groups v ON v.app = substr(a.source, 5) AND v.uid = i.uid
