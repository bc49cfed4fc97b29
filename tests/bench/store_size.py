"""Bytes per request in each report store backend (a script that prints figures, never a test).

REQUESTS tagged requests (default 5000) on three routes of 7, 2 and 1 statements (3.3 on
average, with N+1 and duplicate findings) through pgtally, once into an SQLite file and once
into a PostgreSQL store; prints the file's size and the schema's tables and indexes
(pg_total_relation_size), per request and per statement, and each table's share.

Usage: /usr/bin/python3 tests/bench/store_size.py BUILD_DIR. Figures in docs/fleet.md (Sizing).
"""

import os
import sqlite3
import sys

import psycopg

import proxies
from proxies import h


def traffic(port, n):
    with psycopg.connect(h.dsn(port), autocommit=True) as conn:
        for i in range(n):
            route = ("/orders", "/users", "/health")[i % 3]
            tag = "/*request_id='r%d',route='%s'*/ " % (i, route.replace("/", "%2F"))
            if route == "/orders":
                qs = [tag + "select %d as o" % i] + [tag + "select %d as item" % (100 + k)
                                                      for k in range(6)]
            elif route == "/users":
                qs = [tag + "select 'u' as n"] * 2
            else:
                qs = [tag + "select 1"]
            for q in qs:
                conn.execute(q)


def main():
    build = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
    binary = os.path.join(build or "", "proxy", "pgtally")
    if not build or not os.access(binary, os.X_OK):
        raise SystemExit("usage: store_size.py BUILD_DIR")
    n = int(os.environ.get("REQUESTS", 5000))
    cluster = h.Cluster().start()
    try:
        cluster.admin_sql("CREATE DATABASE store OWNER %s" % h.TRUST_USER)
        wd = proxies.workdir()
        path = os.path.join(wd, "size.db")
        for kind, args in (("sqlite", ["--db", path]),
                           ("postgresql", ["--db", h.dsn(cluster.port, dbname="store")])):
            p = proxies.Pgtally(cluster, wd, binary, extra_args=args).start()
            traffic(p.port, n)
            p.stop()
            if kind == "sqlite":
                db = sqlite3.connect(path)
                statements = db.execute("select count(*) from statements").fetchone()[0]
                tables = db.execute("select name, sum(pgsize) from dbstat group by name"
                                    " order by 2 desc").fetchall()
                db.close()
                total = os.path.getsize(path)
            else:
                out = cluster.admin_sql(
                    "select c.relname, pg_total_relation_size(c.oid) from pg_class c"
                    " join pg_namespace s on s.oid = c.relnamespace"
                    " where s.nspname = 'pgtally' and c.relkind = 'r' order by 2 desc",
                    dbname="store")
                tables = [(line.split("|")[0], int(line.split("|")[1]))
                          for line in out.split()]
                total = sum(size for _, size in tables)
                statements = int(cluster.admin_sql("select count(*) from pgtally.statements",
                                                   dbname="store"))
            print("%-10s %9d bytes for %d requests, %d statements: %.0f B/request, "
                  "%.0f B/statement" % (kind, total, n, statements, total / n,
                                        total / statements))
            for name, size in tables[:6]:
                print("  %-36s %5.1f%%" % (name, 100.0 * size / total))
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
