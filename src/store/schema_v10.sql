-- Schema version 10: a plan whose findings or operations are exactly those of the plan before it
-- stores them once. A steady plan of a large directory (nothing applied, nothing changed since)
-- used to write the same 274k findings and 180k operations again, a second of its 4–5 s at 1M.
--
-- `findings` and `operations` stay what auditors query, now as views: the rows a plan stored
-- itself (`finding_rows`, `operation_rows`) and, for a plan that shares, the rows of the plan it
-- shares with under its own id. `runs.findings_of` / `plans.operations_of` name that plan;
-- `*_digest` is a keyed hash (SipHash-1-3, 128 bits, key in `store_meta`) of what was found or
-- planned, compared with the next plan's.
ALTER TABLE findings RENAME TO finding_rows;
ALTER TABLE runs ADD COLUMN findings_of INTEGER;
ALTER TABLE runs ADD COLUMN findings_digest TEXT;
CREATE VIEW findings AS
SELECT run_id, app, kind, subject, detail, idp_id, sp_id, attribute, old_value, new_value
FROM finding_rows
UNION ALL
SELECT r.id AS run_id, f.app, f.kind, f.subject, f.detail, f.idp_id, f.sp_id, f.attribute, f.old_value, f.new_value
FROM runs r JOIN finding_rows f ON f.run_id = r.findings_of;

ALTER TABLE operations RENAME TO operation_rows;
ALTER TABLE plans ADD COLUMN operations_of INTEGER;
ALTER TABLE plans ADD COLUMN operations_digest TEXT;
CREATE INDEX plans_operations_of ON plans(operations_of) WHERE operations_of IS NOT NULL;
CREATE VIEW operations AS
SELECT plan_id, seq, app, phase, action, method, path, body, finding, subject, idp_id, sp_id, status,
       http_status, attempts, error, result_id, started_at, finished_at
FROM operation_rows
UNION ALL
SELECT p.plan_id AS plan_id, o.seq, o.app, o.phase, o.action, o.method, o.path, o.body, o.finding, o.subject,
       o.idp_id, o.sp_id, o.status, o.http_status, o.attempts, o.error, o.result_id, o.started_at, o.finished_at
FROM plans p JOIN operation_rows o ON o.plan_id = p.operations_of;

-- The journal is written row by row (`apply` writes `operation_rows`, after giving the plan its
-- own rows); an UPDATE of the view by hand does the same: the plan it names, and every plan that
-- shares its rows, get their own copy first, then the row is changed.
CREATE TRIGGER operations_update INSTEAD OF UPDATE ON operations
BEGIN
    INSERT INTO operation_rows (plan_id, seq, app, phase, action, method, path, body, finding, subject, idp_id, sp_id,
                                status, http_status, attempts, error, result_id, started_at, finished_at)
    SELECT p.plan_id, o.seq, o.app, o.phase, o.action, o.method, o.path, o.body, o.finding, o.subject, o.idp_id,
           o.sp_id, o.status, o.http_status, o.attempts, o.error, o.result_id, o.started_at, o.finished_at
    FROM plans p JOIN operation_rows o ON o.plan_id = p.operations_of
    WHERE p.plan_id = OLD.plan_id OR p.operations_of = OLD.plan_id;
    UPDATE plans SET operations_of = NULL WHERE plan_id = OLD.plan_id OR operations_of = OLD.plan_id;
    UPDATE operation_rows SET seq = NEW.seq, app = NEW.app, phase = NEW.phase, action = NEW.action,
        method = NEW.method, path = NEW.path, body = NEW.body, finding = NEW.finding, subject = NEW.subject,
        idp_id = NEW.idp_id, sp_id = NEW.sp_id, status = NEW.status, http_status = NEW.http_status,
        attempts = NEW.attempts, error = NEW.error, result_id = NEW.result_id, started_at = NEW.started_at,
        finished_at = NEW.finished_at
    WHERE plan_id = OLD.plan_id AND seq = OLD.seq;
END;
