-- scimsync store, schema version 1. The public tables and views are documented in the README;
-- keep them stable. Internal columns (uid, gid, hash, run_id) may be used but are not promised.

-- Every configured connection, as of its last pull.
CREATE TABLE sources (
    name          TEXT PRIMARY KEY,   -- 'idp.corp', 'app.quip'
    role          TEXT NOT NULL,      -- 'idp' | 'app'
    kind          TEXT NOT NULL,      -- IdP kind, or 'scim' for apps
    profile       TEXT,               -- apps: the SP profile
    base_url      TEXT,
    last_pull_run INTEGER             -- runs.id of the last successful pull
);

-- One row per pull (and later plan/apply) of one source.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,        -- 'pull' | 'plan' | 'apply'
    source      TEXT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,        -- 'running' | 'ok' | 'failed'
    counts      TEXT,                 -- JSON object
    error       TEXT
);

-- Current users of every source. A changed or removed user's previous version moves to
-- user_versions, so the state at any time is current ∪ closed versions (view user_history).
CREATE TABLE users (
    uid          INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    id           TEXT NOT NULL,
    user_name    TEXT,
    external_id  TEXT,
    given_name   TEXT,
    family_name  TEXT,
    formatted    TEXT,
    display_name TEXT,
    email        TEXT,
    active       INTEGER NOT NULL,
    title        TEXT,
    phone        TEXT,
    timezone     TEXT,
    role         TEXT,
    status_raw   TEXT,
    raw          TEXT NOT NULL,
    hash         INTEGER NOT NULL,
    valid_from   TEXT NOT NULL,
    run_id       INTEGER NOT NULL
);
CREATE INDEX users_source ON users(source);

CREATE TABLE user_versions (
    uid          INTEGER NOT NULL,
    source       TEXT NOT NULL,
    id           TEXT NOT NULL,
    user_name    TEXT,
    external_id  TEXT,
    given_name   TEXT,
    family_name  TEXT,
    formatted    TEXT,
    display_name TEXT,
    email        TEXT,
    active       INTEGER NOT NULL,
    title        TEXT,
    phone        TEXT,
    timezone     TEXT,
    role         TEXT,
    status_raw   TEXT,
    raw          TEXT NOT NULL,
    hash         INTEGER NOT NULL,
    valid_from   TEXT NOT NULL,
    run_id       INTEGER NOT NULL,
    valid_to     TEXT NOT NULL,
    ended_by_run INTEGER NOT NULL
);
CREATE INDEX user_versions_source_id ON user_versions(source, id);

CREATE TABLE groups (
    gid          INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    id           TEXT NOT NULL,
    display_name TEXT NOT NULL,
    external_id  TEXT,
    raw          TEXT NOT NULL,
    hash         INTEGER NOT NULL,
    valid_from   TEXT NOT NULL,
    run_id       INTEGER NOT NULL
);
CREATE INDEX groups_source ON groups(source);

CREATE TABLE group_versions (
    gid          INTEGER NOT NULL,
    source       TEXT NOT NULL,
    id           TEXT NOT NULL,
    display_name TEXT NOT NULL,
    external_id  TEXT,
    raw          TEXT NOT NULL,
    hash         INTEGER NOT NULL,
    valid_from   TEXT NOT NULL,
    run_id       INTEGER NOT NULL,
    valid_to     TEXT NOT NULL,
    ended_by_run INTEGER NOT NULL
);
CREATE INDEX group_versions_source_id ON group_versions(source, id);

-- Direct memberships; gid/uid are the integer keys of groups/users for fast joins.
CREATE TABLE memberships (
    source     TEXT NOT NULL,
    group_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    gid        INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    valid_from TEXT NOT NULL,
    run_id     INTEGER NOT NULL
);
CREATE INDEX memberships_source ON memberships(source);

CREATE TABLE membership_versions (
    source       TEXT NOT NULL,
    group_id     TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    valid_from   TEXT NOT NULL,
    run_id       INTEGER NOT NULL,
    valid_to     TEXT NOT NULL,
    ended_by_run INTEGER NOT NULL
);

-- IdP groups bound to each app, resolved at the IdP's pull. idp_group_id is NULL when a
-- configured group name matched no IdP group.
CREATE TABLE bindings (
    app          TEXT NOT NULL,
    idp          TEXT NOT NULL,
    group_name   TEXT NOT NULL,
    idp_group_id TEXT,
    valid_from   TEXT NOT NULL,
    run_id       INTEGER NOT NULL
);

CREATE TABLE binding_versions (
    app          TEXT NOT NULL,
    idp          TEXT NOT NULL,
    group_name   TEXT NOT NULL,
    idp_group_id TEXT,
    valid_from   TEXT NOT NULL,
    run_id       INTEGER NOT NULL,
    valid_to     TEXT NOT NULL,
    ended_by_run INTEGER NOT NULL
);

-- History views: every version of every object with its validity interval; valid_to is NULL
-- for the current version. The state at time T: valid_from <= T AND (valid_to IS NULL OR valid_to > T).
CREATE VIEW user_history AS
    SELECT source, id, user_name, external_id, given_name, family_name, formatted, display_name,
           email, active, title, phone, timezone, role, status_raw, raw, valid_from, NULL AS valid_to
    FROM users
    UNION ALL
    SELECT source, id, user_name, external_id, given_name, family_name, formatted, display_name,
           email, active, title, phone, timezone, role, status_raw, raw, valid_from, valid_to
    FROM user_versions;

CREATE VIEW group_history AS
    SELECT source, id, display_name, external_id, raw, valid_from, NULL AS valid_to FROM groups
    UNION ALL
    SELECT source, id, display_name, external_id, raw, valid_from, valid_to FROM group_versions;

CREATE VIEW membership_history AS
    SELECT source, group_id, user_id, valid_from, NULL AS valid_to FROM memberships
    UNION ALL
    SELECT source, group_id, user_id, valid_from, valid_to FROM membership_versions;

CREATE VIEW binding_history AS
    SELECT app, idp, group_name, idp_group_id, valid_from, NULL AS valid_to FROM bindings
    UNION ALL
    SELECT app, idp, group_name, idp_group_id, valid_from, valid_to FROM binding_versions;
