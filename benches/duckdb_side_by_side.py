"""The four core drift joins (missing, attribute drift, orphans, membership diff) run by DuckDB
on the same SQLite store scimsync plans (its SQLite scanner, ATTACH … TYPE sqlite), using the
links and bindings a previous `scimsync plan` stored. Prints the median of several runs per
query and in total. Run through benches/side-by-side.sh, which installs DuckDB."""
import sys

import os

import duckdb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import side_by_side_queries  # noqa: E402
import duckdb_extension_sqlite_scanner

# The extension ships in the duckdb-extension-sqlite-scanner wheel: load it from there (DuckDB
# would otherwise try to download it).
EXTENSION = os.path.join(os.path.dirname(duckdb_extension_sqlite_scanner.__file__), "extensions",
                         f"v{duckdb.__version__}", "sqlite_scanner.duckdb_extension")

STORE = sys.argv[1]
APP, IDP = sys.argv[2] if len(sys.argv) > 2 else "app.bench", sys.argv[3] if len(sys.argv) > 3 else "idp.corp"
RUNS = 3

SETUP = f"""
LOAD '{EXTENSION}';
ATTACH '{STORE}' AS s (TYPE sqlite, READ_ONLY);
SET threads = 2;
"""
QUERIES = side_by_side_queries.queries(APP, IDP)

con = duckdb.connect()
con.execute(SETUP)
side_by_side_queries.time_queries(con, "duckdb", QUERIES, RUNS)
