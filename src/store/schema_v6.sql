-- Schema version 6: memberships stored as integer keys only. A membership row used to carry
-- the source and both ids as text (≈ 120 bytes; 6.8M of them made most of a 1M-user pull);
-- `member_keys` holds (gid, uid, run_id), clustered by group, and the public `memberships`
-- keeps its columns as a view that joins the ids back. A run's snapshot time is kept once, in
-- runs.snapshot_at, instead of in every membership.
ALTER TABLE runs ADD COLUMN snapshot_at TEXT;

UPDATE runs SET snapshot_at = x.valid_from
FROM (SELECT run_id, MIN(valid_from) AS valid_from FROM memberships GROUP BY run_id) AS x
WHERE x.run_id = runs.id;

-- gid and uid are the integer keys of groups and users (unique across sources).
CREATE TABLE member_keys (
    gid    INTEGER NOT NULL,
    uid    INTEGER NOT NULL,
    run_id INTEGER NOT NULL,   -- the run that added the membership
    PRIMARY KEY (gid, uid)
) WITHOUT ROWID;

INSERT OR IGNORE INTO member_keys (gid, uid, run_id) SELECT gid, uid, run_id FROM memberships ORDER BY gid, uid;

DROP INDEX memberships_source;
DROP TABLE memberships;

-- Direct memberships, as before: valid_from is the snapshot time of the run that added it.
CREATE VIEW memberships AS
SELECT g.source AS source, g.id AS group_id, u.id AS user_id, k.gid AS gid, k.uid AS uid,
       r.snapshot_at AS valid_from, k.run_id AS run_id
FROM member_keys k
JOIN groups g ON g.gid = k.gid
JOIN users u ON u.uid = k.uid
LEFT JOIN runs r ON r.id = k.run_id;
