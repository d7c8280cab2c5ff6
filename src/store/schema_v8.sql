-- Schema version 8: attributes beyond the fixed columns. `attributes` is one JSON object of text
-- values with sorted keys (NULL when there are none): an IdP's standard profile fields
-- (department, cost_center, manager_id, …) and its custom attributes, an app account's every
-- attribute by its SCIM path (urn:…:enterprise:2.0:User:department, nickName, …). It is kept in
-- user_versions like every column, so `sql --at` and `diff` see it; read it with
-- json_extract(attributes, '$."name"') in SQLite and in `scimsync sql` alike.
-- sources.user_schema: the User attribute paths an app's /Schemas declares (a JSON array,
-- lower-cased), read by pulls of apps with mappings; NULL when unknown.
ALTER TABLE users ADD COLUMN attributes TEXT;
ALTER TABLE sources ADD COLUMN user_schema TEXT;
ALTER TABLE user_versions ADD COLUMN attributes TEXT;

DROP VIEW IF EXISTS user_history;
CREATE VIEW user_history AS
    SELECT source, id, user_name, external_id, given_name, family_name, formatted, display_name,
           email, active, title, phone, timezone, role, status_raw, raw, valid_from, NULL AS valid_to, attributes
    FROM users
    UNION ALL
    SELECT source, id, user_name, external_id, given_name, family_name, formatted, display_name,
           email, active, title, phone, timezone, role, status_raw, raw, valid_from, valid_to, attributes
    FROM user_versions;
