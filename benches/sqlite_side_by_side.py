"""The same four core drift joins as benches/duckdb_side_by_side.py, run by SQLite itself (the
sqlite3 library, the engine of the `sqlite3` shell) on the store, read-only. Prints the median of
several runs per query and in total.
  python3 benches/sqlite_side_by_side.py STORE [APP IDP]"""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import side_by_side_queries  # noqa: E402

STORE = sys.argv[1]
APP, IDP = sys.argv[2] if len(sys.argv) > 2 else "app.bench", sys.argv[3] if len(sys.argv) > 3 else "idp.corp"
RUNS = int(os.environ.get("SIDE_BY_SIDE_RUNS", "3"))

con = sqlite3.connect(":memory:")
con.execute(f"ATTACH DATABASE 'file:{STORE}?mode=ro' AS s")
con.execute("PRAGMA s.cache_size = -1000000")
side_by_side_queries.time_queries(
    con, "sqlite", side_by_side_queries.queries(APP, IDP), RUNS, f", SQLite {sqlite3.sqlite_version}"
)
