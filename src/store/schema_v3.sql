-- Schema version 3: plans, the operations journal and provisioning events (scimsync apply).

-- What each app's SCIM endpoint said of itself at its last pull (the generic profile reads it).
ALTER TABLE sources ADD COLUMN service_provider_config TEXT;

-- A plan: the snapshots it was made from. An apply refuses a plan when a source has been pulled
-- again since (the plan is stale).
CREATE TABLE plans (
    plan_id    INTEGER PRIMARY KEY,   -- the plan run's runs.id
    created_at TEXT NOT NULL,
    snapshots  TEXT NOT NULL          -- JSON object: source name → runs.id of the pull used
);

-- The journal: every SCIM write a plan calls for, in order. Written before the HTTP call
-- (status 'in_flight', attempts + 1) and after it ('done' | 'failed' | 'skipped'); an apply that
-- finds 'in_flight' rows looks the object up before doing anything again.
CREATE TABLE operations (
    plan_id     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    app         TEXT NOT NULL,
    phase       INTEGER NOT NULL,     -- operations run phase by phase (see README)
    action      TEXT NOT NULL,        -- 'user.create', 'group.members', …
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    body        TEXT,                 -- JSON; {"$idp_user": id} stands for that user's app id
    finding     TEXT NOT NULL,        -- the finding kind it corrects
    subject     TEXT,
    idp_id      TEXT,
    sp_id       TEXT,
    status      TEXT NOT NULL,        -- 'planned' | 'in_flight' | 'done' | 'failed' | 'skipped'
    http_status INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    result_id   TEXT,                 -- the id the app gave a created object
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (plan_id, seq)
);
CREATE INDEX operations_status ON operations(status);

-- The provisioning event log, named like JumpCloud's Directory Insights events.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    name        TEXT NOT NULL,        -- user_create_provision, user_deprovision, …
    app         TEXT NOT NULL,
    subject     TEXT,
    outcome     TEXT NOT NULL,        -- 'success' | 'failure' | 'skipped'
    http_status INTEGER,
    message     TEXT,
    plan_id     INTEGER,
    seq         INTEGER
);
CREATE INDEX events_at ON events(at);
