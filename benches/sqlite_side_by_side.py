"""The same four core drift joins as benches/duckdb_side_by_side.py, run by SQLite itself (the
sqlite3 library, the engine of the `sqlite3` shell) on the store, read-only. Prints the median of
several runs per query and in total.
  python3 benches/sqlite_side_by_side.py STORE [APP IDP]"""
import os
import sqlite3
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import side_by_side_queries  # noqa: E402

STORE = sys.argv[1]
APP, IDP = sys.argv[2] if len(sys.argv) > 2 else "app.bench", sys.argv[3] if len(sys.argv) > 3 else "idp.corp"
RUNS = int(os.environ.get("SIDE_BY_SIDE_RUNS", "3"))

con = sqlite3.connect(":memory:")
con.execute(f"ATTACH DATABASE 'file:{STORE}?mode=ro' AS s")
con.execute("PRAGMA s.cache_size = -1000000")
QUERIES = side_by_side_queries.queries(APP, IDP)
totals = []
per = {name: [] for name in QUERIES}
for _ in range(RUNS):
    start = time.perf_counter()
    for name, sql in QUERIES.items():
        t = time.perf_counter()
        con.execute(sql).fetchall()
        per[name].append(time.perf_counter() - t)
    totals.append(time.perf_counter() - start)
for name, times in per.items():
    print(f"sqlite {name:16} {statistics.median(times):6.2f} s")
print(f"sqlite total            {statistics.median(totals):6.2f} s (median of {RUNS}, SQLite {sqlite3.sqlite_version})")
