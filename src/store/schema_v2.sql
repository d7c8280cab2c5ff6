-- Schema version 2: correlation and findings (written by `scimsync plan`).

-- Which app account belongs to which IdP user, and how that was decided. A link outlives
-- its IdP user (the account is then orphaned) and ends when the app account is gone.
CREATE TABLE links (
    app         TEXT NOT NULL,
    idp_user_id TEXT NOT NULL,
    sp_user_id  TEXT NOT NULL,
    matched_by  TEXT NOT NULL,   -- 'externalId' | 'userName' | 'email' | 'created'
    linked_at   TEXT NOT NULL,
    idp_uid     INTEGER,         -- internal: users.uid of each side when linked (checked
    sp_uid      INTEGER,         -- against the ids before use)
    PRIMARY KEY (app, sp_user_id)
);

CREATE TABLE group_links (
    app          TEXT NOT NULL,
    idp_group_id TEXT NOT NULL,
    sp_group_id  TEXT NOT NULL,
    matched_by   TEXT NOT NULL,  -- 'name' (taken over) | 'created'
    linked_at    TEXT NOT NULL,
    idp_gid      INTEGER,
    sp_gid       INTEGER,
    PRIMARY KEY (app, sp_group_id)
);

-- What each plan run found. attribute/old_value/new_value say what differs (drift: the
-- attribute, the app's value, the IdP's value; group.members: 'add'/'remove' and the member).
CREATE TABLE findings (
    run_id    INTEGER NOT NULL,
    app       TEXT NOT NULL,
    kind      TEXT NOT NULL,
    subject   TEXT,
    detail    TEXT,
    idp_id    TEXT,
    sp_id     TEXT,
    attribute TEXT,
    old_value TEXT,
    new_value TEXT
);
CREATE INDEX findings_run ON findings(run_id);
