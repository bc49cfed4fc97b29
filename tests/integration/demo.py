"""`make demo` workload: pgtally proxy in front of Postgres, a short workload, a summary.

Owns the demo's steps: start a throwaway cluster (pgharness) unless an upstream is given,
start the proxy with --log-queries, run pgbench and a psql session containing an N+1-looking
loop, stop the proxy (SIGTERM flushes the log) and print a short summary of what it captured,
grouped by a crude statement shape (literals masked). A stopgap until `pgtally report`
exists: the real normalization lives in protocol/sqlnorm.

usage: demo.py --pgtally PATH [--upstream postgres://user[:pw]@host:port/db] [--out FILE]
       (DATABASE_URL is used when --upstream is absent; with neither, a throwaway cluster)
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgharness as h  # noqa: E402

N_CUSTOMERS = 10

SETUP_SQL = """
drop table if exists orders, customers;
create table customers (id int primary key, name text not null);
create table orders (id serial primary key, customer_id int not null references customers,
                     total numeric(10, 2) not null);
insert into customers select g, 'customer ' || g from generate_series(1, %d) g;
insert into orders (customer_id, total)
  select 1 + g %% %d, (g * 7 %% 100) + 0.99 from generate_series(1, 200) g;
""" % (N_CUSTOMERS, N_CUSTOMERS)


def n_plus_one_session():
    """What an ORM does with a lazy relation: one query for the list, one per item."""
    lines = ["select id, name from customers order by id limit %d;" % N_CUSTOMERS]
    lines += ["select * from orders where customer_id = %d;" % i
              for i in range(1, N_CUSTOMERS + 1)]
    lines += ["select c.id, count(o.id), sum(o.total) from customers c "
              "left join orders o on o.customer_id = c.id group by c.id order by c.id;"]
    return "\n".join(lines) + "\n"


def shape(sql):
    """Crude statement shape for grouping: literals and $n parameters become '?'."""
    s = re.sub(r"'(?:[^']|'')*'", "?", sql)
    s = re.sub(r"\$\d+", "?", s)
    s = re.sub(r"(?<![\w.])-?\d+(?:\.\d+)?\b", "?", s)
    return re.sub(r"\s+", " ", s).strip()


def run(cmd, env, input=None):
    print("$ " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd, env=env, input=input, text=True, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = r.stdout.strip().splitlines()
    for line in out[-4:]:
        print("  " + line)
    if r.returncode != 0:
        raise SystemExit("demo: %s failed (exit %d)" % (cmd[0], r.returncode))


def summarize(events):
    print("\n== captured %d statements on %d connections"
          % (len(events), len({e["conn"] for e in events})))
    groups = collections.OrderedDict()
    for e in events:
        key = shape(e["sql"]) if e["sql"] else "<%s, no SQL text>" % e["protocol"]
        g = groups.setdefault(key, {"n": 0, "rows": 0, "us": 0, "errors": 0, "texts": set()})
        g["n"] += 1
        g["rows"] += e["rows"]
        g["us"] += e["end_us"] - e["start_us"]
        g["errors"] += e["sqlstate"] is not None
        g["texts"].add(e["sql"])
    print("%7s %9s %10s %7s  %s" % ("count", "rows", "time ms", "errors", "statement shape"))
    for key, g in sorted(groups.items(), key=lambda kv: -kv[1]["n"])[:20]:
        text = key if len(key) <= 78 else key[:75] + "..."
        print("%7d %9d %10.1f %7d  %s" % (g["n"], g["rows"], g["us"] / 1000.0, g["errors"],
                                          text))
    if len(groups) > 20:
        print("  ... and %d more shapes" % (len(groups) - 20))

    # One connection running one shape many times with different literals: N+1-looking.
    per_conn = collections.defaultdict(lambda: collections.defaultdict(set))
    counts = collections.Counter()
    for e in events:
        if e["sql"] and e["command"] == "SELECT":
            per_conn[e["conn"]][shape(e["sql"])].add(e["sql"])
            counts[(e["conn"], shape(e["sql"]))] += 1
    print("\n== N+1 suspects (same shape >= 5 times on one connection, different values)")
    found = False
    for (conn, key), n in counts.most_common():
        if n >= 5 and len(per_conn[conn][key]) >= 2:
            found = True
            print("  connection %d: %d x %s" % (conn, n, key))
    if not found:
        print("  none")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pgtally", required=True)
    ap.add_argument("--upstream", default=os.environ.get("DATABASE_URL"))
    ap.add_argument("--out", help="copy the query log here")
    args = ap.parse_args()
    os.environ["PGTALLY_BIN"] = os.path.abspath(args.pgtally)

    if args.upstream:
        u = urllib.parse.urlparse(args.upstream)
        user, password = u.username or os.environ.get("USER", "postgres"), u.password
        dbname = (u.path or "/").lstrip("/") or user
        upstream = "%s:%d" % (u.hostname or "127.0.0.1", u.port or 5432)
        print("demo: using upstream %s (it gets pgbench_* and demo tables)" % upstream)
        cluster = h.Cluster()  # only its temp dir, for the query log
    else:
        print("demo: starting a throwaway PostgreSQL ...", flush=True)
        cluster = h.Cluster().start()
        user, password, dbname, upstream = h.TRUST_USER, None, h.DBNAME, None
        print("demo: PostgreSQL on 127.0.0.1:%d" % cluster.port)

    proxy = h.Proxy(cluster, upstream=upstream).start()
    print("demo: pgtally proxy on 127.0.0.1:%d, logging to %s\n" % (proxy.port, proxy.log_path))
    env = h.client_env(**({"PGPASSWORD": password} if password else {}))
    conn = ["-h", "127.0.0.1", "-p", str(proxy.port), "-U", user]
    psql = [h.pgbin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"] + conn + ["-d", dbname]
    try:
        run([h.pgbin("pgbench"), "-i", "-s", "1", "-q"] + conn + [dbname], env)
        run([h.pgbin("pgbench"), "-n", "-M", "prepared", "-c", "2", "-j", "1", "-t", "20"]
            + conn + [dbname], env)
        run(psql, env, input=SETUP_SQL)
        run(psql + ["-o", os.devnull], env, input=n_plus_one_session())
    finally:
        res = proxy.stop()
    if res.returncode != 0:
        print(res.stderr[-2000:], file=sys.stderr)
        raise SystemExit("demo: proxy exited with %s" % res.returncode)
    if args.out:
        shutil.copyfile(proxy.log_path, args.out)
        print("\ndemo: query log copied to %s" % args.out)
    summarize(res.events)


if __name__ == "__main__":
    main()
