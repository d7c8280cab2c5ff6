"""The four core drift questions (missing accounts, attribute drift, orphaned accounts, the
membership diff) answered by DuckDB on the same SQLite store `scimsync plan` reads, written as
one would for DuckDB: the columns the questions need are copied out of SQLite once (DuckDB's
SQLite scanner reads a table per scan, and the questions read users and memberships several
times), then every question runs on DuckDB's own columnar tables with its hash joins. Two forms:

  links       starting from the correlation a previous `scimsync plan` stored (links, group_links);
  correlate   correlating by itself, as scimsync's first plan does: accounts to IdP users by
              lower(userName), app groups to bound IdP groups by name.

Prints, per form, the copy, each question and the total (median of RUNS), which compare with
the whole `scimsync plan` (its engine, planner and stores). Run through benches/side-by-side.sh.
    python benches/duckdb_expert.py STORE [APP_SOURCE IDP_SOURCE]"""
import os
import statistics
import sys
import time

import duckdb
import duckdb_extension_sqlite_scanner

EXTENSION = os.path.join(os.path.dirname(duckdb_extension_sqlite_scanner.__file__), "extensions",
                         f"v{duckdb.__version__}", "sqlite_scanner.duckdb_extension")
STORE = sys.argv[1]
APP_SOURCE = sys.argv[2] if len(sys.argv) > 2 else "app.bench"
IDP_SOURCE = sys.argv[3] if len(sys.argv) > 3 else "idp.corp"
APP = APP_SOURCE.split(".", 1)[1]
RUNS = int(os.environ.get("RUNS", "3"))
COMPARED = ["user_name", "email", "title", "given_name", "family_name", "display_name", "timezone"]

# What both forms copy: the two sources' users (the compared columns), groups, direct
# memberships as integer keys, and the app's bound IdP groups.
COPY = f"""
CREATE OR REPLACE TEMP TABLE u AS
    SELECT uid, source, lower(user_name) AS lname, active::BOOLEAN AS active, {", ".join(COMPARED)}
    FROM s.users WHERE source IN ('{IDP_SOURCE}', '{APP_SOURCE}');
CREATE OR REPLACE TEMP TABLE g AS
    SELECT gid, source, id, display_name FROM s.groups WHERE source IN ('{IDP_SOURCE}', '{APP_SOURCE}');
CREATE OR REPLACE TEMP TABLE mk AS SELECT gid, uid FROM s.member_keys;
CREATE OR REPLACE TEMP TABLE bound AS
    SELECT g.gid FROM s.bindings b JOIN g ON g.source = '{IDP_SOURCE}' AND g.id = b.idp_group_id WHERE b.app = '{APP}';
-- In scope: active IdP users directly in a bound group.
CREATE OR REPLACE TEMP TABLE scope AS
    SELECT DISTINCT mk.uid FROM bound JOIN mk USING (gid) JOIN u ON u.uid = mk.uid AND u.active;
"""
COPY_LINKS = f"""
CREATE OR REPLACE TEMP TABLE pairs AS SELECT idp_uid, sp_uid FROM s.links WHERE app = '{APP}' AND idp_uid IS NOT NULL AND sp_uid IS NOT NULL;
CREATE OR REPLACE TEMP TABLE group_pairs AS SELECT idp_gid, sp_gid FROM s.group_links WHERE app = '{APP}';
"""
# Correlating: an account and an IdP user with the same lower(userName), each only once.
CORRELATE = f"""
CREATE OR REPLACE TEMP TABLE pairs AS
    SELECT i.uid AS idp_uid, a.uid AS sp_uid
    FROM (SELECT uid, lname FROM u WHERE source = '{IDP_SOURCE}' QUALIFY count(*) OVER (PARTITION BY lname) = 1) i
    JOIN (SELECT uid, lname FROM u WHERE source = '{APP_SOURCE}' QUALIFY count(*) OVER (PARTITION BY lname) = 1) a USING (lname);
CREATE OR REPLACE TEMP TABLE group_pairs AS
    SELECT ig.gid AS idp_gid, ag.gid AS sp_gid
    FROM bound JOIN g ig ON ig.gid = bound.gid
    JOIN g ag ON ag.source = '{APP_SOURCE}' AND ag.display_name = ig.display_name;
"""
DIFFERS = " OR ".join(f"i.{c} IS DISTINCT FROM a.{c}" for c in COMPARED)
QUESTIONS = {
    "missing": "SELECT count(*) FROM scope ANTI JOIN pairs p ON p.idp_uid = scope.uid",
    "attribute drift": f"""SELECT count(*) FROM pairs p SEMI JOIN scope ON scope.uid = p.idp_uid
        JOIN u i ON i.uid = p.idp_uid JOIN u a ON a.uid = p.sp_uid WHERE {DIFFERS}""",
    "orphans": """SELECT count(*) FROM pairs p JOIN u a ON a.uid = p.sp_uid AND a.active
        ANTI JOIN scope ON scope.uid = p.idp_uid""",
    "membership diff": """WITH
        desired AS (SELECT gp.sp_gid, mk.uid AS idp_uid FROM group_pairs gp JOIN mk ON mk.gid = gp.idp_gid
                    SEMI JOIN scope ON scope.uid = mk.uid),
        actual AS (SELECT gp.sp_gid, p.idp_uid FROM group_pairs gp JOIN mk ON mk.gid = gp.sp_gid
                   JOIN pairs p ON p.sp_uid = mk.uid)
        SELECT count(*) FROM desired d FULL OUTER JOIN actual x USING (sp_gid, idp_uid)
        WHERE d.sp_gid IS NULL OR x.sp_gid IS NULL""",
}


def run(form, setup):
    con = duckdb.connect()
    con.execute(f"LOAD '{EXTENSION}'; ATTACH '{STORE}' AS s (TYPE sqlite, READ_ONLY); SET threads = 2;")
    steps = {"copy": COPY, ("links" if form == "links" else "correlate"): setup}
    times = {name: [] for name in list(steps) + list(QUESTIONS)}
    totals, answers = [], {}
    for _ in range(RUNS):
        start = time.perf_counter()
        for name, sql in steps.items():
            t = time.perf_counter()
            con.execute(sql)
            times[name].append(time.perf_counter() - t)
        for name, sql in QUESTIONS.items():
            t = time.perf_counter()
            answers[name] = con.execute(sql).fetchone()[0]
            times[name].append(time.perf_counter() - t)
        totals.append(time.perf_counter() - start)
    for name, ts in times.items():
        extra = f"  ({answers[name]:,})" if name in answers else ""
        print(f"duckdb [{form}] {name:16} {statistics.median(ts):6.2f} s{extra}")
    print(f"duckdb [{form}] total            {statistics.median(totals):6.2f} s (median of {RUNS})")


run("links", COPY_LINKS)
run("correlate", CORRELATE)
