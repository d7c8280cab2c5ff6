"""The four core drift joins (missing, attribute drift, orphans, membership diff) over a
scimsync store attached as schema `s`, as run by benches/duckdb_side_by_side.py and
benches/sqlite_side_by_side.py. They start from the links and bindings a previous `scimsync plan`
stored, as scimsync's own engine does."""


def queries(app="app.bench", idp="idp.corp"):
    APP, IDP = app, idp
    # Scope: active IdP users directly in a bound group; links: the stored correlation.
    SCOPE = f"""(SELECT DISTINCT u.uid FROM s.bindings b JOIN s.groups g ON g.source = '{IDP}' AND g.id = b.idp_group_id
                JOIN s.member_keys m ON m.gid = g.gid JOIN s.users u ON u.uid = m.uid AND u.active WHERE b.app = '{APP.split('.',1)[1]}')"""
    LINKS = f"(SELECT idp_uid, sp_uid FROM s.links WHERE app = '{APP.split('.',1)[1]}')"
    return {
        "missing": f"""SELECT count(*) FROM {SCOPE} sc WHERE NOT EXISTS (SELECT 1 FROM {LINKS} l WHERE l.idp_uid = sc.uid)""",
        "attribute drift": f"""SELECT count(*) FROM {LINKS} l JOIN {SCOPE} sc ON sc.uid = l.idp_uid
            JOIN s.users i ON i.uid = l.idp_uid JOIN s.users a ON a.uid = l.sp_uid
            WHERE (i.title IS DISTINCT FROM a.title) OR (i.email IS DISTINCT FROM a.email) OR (i.user_name IS DISTINCT FROM a.user_name)
               OR (i.given_name IS DISTINCT FROM a.given_name) OR (i.family_name IS DISTINCT FROM a.family_name)
               OR (i.display_name IS DISTINCT FROM a.display_name) OR (i.timezone IS DISTINCT FROM a.timezone)""",
        "orphans": f"""SELECT count(*) FROM {LINKS} l JOIN s.users a ON a.uid = l.sp_uid AND a.active
            WHERE NOT EXISTS (SELECT 1 FROM {SCOPE} sc WHERE sc.uid = l.idp_uid)""",
        "membership diff": f"""WITH managed AS (SELECT idp_gid, sp_gid FROM s.group_links WHERE app = '{APP.split('.',1)[1]}'),
            desired AS (SELECT mg.sp_gid, m.uid AS idp_uid FROM managed mg JOIN s.member_keys m ON m.gid = mg.idp_gid JOIN s.users u ON u.uid = m.uid AND u.active),
            actual AS (SELECT mg.sp_gid, l.idp_uid FROM managed mg JOIN s.member_keys m ON m.gid = mg.sp_gid JOIN {LINKS} l ON l.sp_uid = m.uid)
            SELECT count(*) FROM desired d FULL OUTER JOIN actual x ON x.sp_gid = d.sp_gid AND x.idp_uid = d.idp_uid
            WHERE x.sp_gid IS NULL OR d.sp_gid IS NULL""",
    }




def time_queries(con, label, queries, runs, note=""):
    """Run every query `runs` times on `con` (sqlite3 or duckdb); print each median and the
    median total."""
    import statistics
    import time

    totals = []
    per = {name: [] for name in queries}
    for _ in range(runs):
        start = time.perf_counter()
        for name, sql in queries.items():
            t = time.perf_counter()
            con.execute(sql).fetchall()
            per[name].append(time.perf_counter() - t)
        totals.append(time.perf_counter() - start)
    for name, times in per.items():
        print(f"{label} {name:16} {statistics.median(times):6.2f} s")
    print(f"{label} total            {statistics.median(totals):6.2f} s (median of {runs}{note})")
