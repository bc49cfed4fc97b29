"""A real Django + DRF app through pgtally: per-request tallies equal what Django itself counted.

The app (tests/integration/djangoapp/) serves `/api/orders/` (N+1 on each order's customer,
items and products, and the currency setting fetched again per order) and `/api/orders-fixed/`
(the same JSON with select_related/prefetch_related). It runs in-process behind Django's own
WSGIHandler, so request_started/request_finished fire as under a real server (connection close
at request end included), with DATABASES pointing at a fresh pgtally proxy per run:

  sqlcommenter      each statement carries request_id, route, controller, action; persistent
                    connection (CONN_MAX_AGE=None), so requests share one connection
  application_name  each request starts with SET application_name = '<route>'; persistent
                    connection; the routes alternate, since a contiguous run with one label
                    is one request by design (docs/architecture.md, "How statements become
                    requests")
  sqlcommenter + ATOMIC_REQUESTS, and the same with route-only comments (no request_id):
                    each request is one transaction whose BEGIN and COMMIT psycopg2 sends
                    untagged; they count as the request's own statements (see below)
  untagged          nothing; Django's default CONN_MAX_AGE=0: one connection per request

How counting is defined (Django's side, per HTTP request):
  - the queries are `connection.queries` (DEBUG=True), cross-checked against an outermost
    execute_wrapper that records each statement's SQL template and params;
  - pgtally `statements` = those queries minus `SET application_name` (pgtally's "setup"
    statements), which must equal pgtally's `setup_statements` (1 in the application_name run,
    0 otherwise);
  - no hidden statements: the endpoints are read-only in autocommit (no BEGIN/COMMIT), and
    the session starts in UTC (options -c TimeZone=UTC) so Django's connection setup sends no
    `SET TIME ZONE`. In the ATOMIC_REQUESTS runs exactly one BEGIN and one COMMIT per request
    are expected on top of connection.queries, counted in that request (statements, distinct
    fingerprints, one transaction, timeline from BEGIN to COMMIT). The run's total in pgtally's `runs` table must equal the sum of
    the expected counts, so any driver statement that slipped in would show;
  - distinct fingerprints = distinct SQL templates; duplicates = queries minus distinct
    executed SQL texts (same text with the same values = a repeat);
  - per template: calls and distinct parameter sets, which give the expected findings with
    pgtally's default thresholds (n_plus_one: >= 5 calls with >= 2 value sets; duplicate:
    >= 1 exact repeat, count = repeats; no overfetch on this small data).

Each run prints a per-endpoint table (pgtally vs Django) to stdout.
"""

import json
import os
import signal
import sqlite3
import sys
import unittest
import wsgiref.util
from collections import Counter, defaultdict

import pgharness as h

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["DJANGO_SETTINGS_MODULE"] = "djangoapp.settings"

import django  # noqa: E402  (after DJANGO_SETTINGS_MODULE)

ORDERS = "/api/orders/"
FIXED = "/api/orders-fixed/"
DETAIL = "/api/orders/<int:pk>/"  # the route of /api/orders/1/, /api/orders/2/ ...
# Alternating, so consecutive requests on one connection never share a label.
PATHS = [ORDERS, "/api/orders/1/", FIXED, "/api/orders/2/", ORDERS, FIXED]
ROUTE_OF = {ORDERS: ORDERS, FIXED: FIXED, "/api/orders/1/": DETAIL, "/api/orders/2/": DETAIL}
N_PLUS_ONE_MIN_CALLS, N_PLUS_ONE_MIN_DISTINCT = 5, 2  # pgtally's defaults (docs/operations.md)
HERE = os.path.dirname(os.path.abspath(__file__))
TAGGING_DOC = os.path.join(HERE, "..", "..", "docs", "tagging.md")

_django_ready = False


def setUpModule():
    global _django_ready
    cluster = h.module_cluster()
    django.setup()
    from django.db import connections
    from djangoapp import seed
    # Schema and data go straight to Postgres: no run's proxy sees them.
    connections["default"].settings_dict["PORT"] = str(cluster.port)
    seed.create_schema_and_data()
    connections["default"].close()
    _django_ready = True


def tearDownModule():
    if _django_ready:
        from django.db import connections
        connections.close_all()
    h.stop_module_cluster()


# --- Django's side ----------------------------------------------------------------------------

class StatementRecorder:
    """Outermost execute_wrapper: the SQL template and params of every statement, before the
    sqlcommenter wrapper (if any) appends its comment."""

    def __init__(self):
        self.statements = []

    def __call__(self, execute, sql, params, many, context):
        self.statements.append((sql, repr(params)))
        return execute(sql, params, many, context)


def is_setup(sql):
    return sql.lstrip().lower().startswith("set application_name")


class DjangoRequest:
    """One HTTP request as Django saw it, and the figures pgtally should report for it."""

    def __init__(self, path, status, body, headers, queries, templates, conn_closed,
                 driver_statements=()):
        self.path = path
        self.status = status
        self.body = body
        self.request_id = headers.get("X-Request-Id")
        self.queries = queries        # connection.queries: [{"sql", "time"}]
        self.templates = templates    # [(sql template, repr(params))]
        self.conn_closed = conn_closed
        app = [(t, q["sql"]) for t, q in zip(templates, queries) if not is_setup(t[0])]
        # Statements psycopg2 sends by itself (BEGIN before the first statement of a
        # transaction, COMMIT from connection.commit()) are not in connection.queries; the run
        # says which it expects per request and they count as the app's, once each.
        app += [((sql, "None"), sql) for sql in driver_statements]
        self.setup_statements = len(queries) + len(driver_statements) - len(app)
        self.statements = len(app)
        self.transactions = driver_statements.count("BEGIN")
        self.distinct_fingerprints = len({t[0] for t, _ in app})
        self.duplicates = len(app) - len({sql for _, sql in app})
        calls, values = Counter(), defaultdict(set)
        for (template, params), _ in app:
            calls[template] += 1
            values[template].add(params)
        self.per_template = {t: (calls[t], len(values[t])) for t in calls}
        self.findings = []
        for t, (n, distinct) in self.per_template.items():
            if n >= N_PLUS_ONE_MIN_CALLS and distinct >= N_PLUS_ONE_MIN_DISTINCT:
                self.findings.append(("n_plus_one", n))
            if n - distinct >= 1:
                self.findings.append(("duplicate", n - distinct))
        self.findings.sort()

    def customer_lookups(self):
        """Executed SQL of the per-order `order.customer` lookups."""
        return [q["sql"] for t, q in zip(self.templates, self.queries)
                if t[0].startswith('SELECT "djangoapp_customer"')]


def wsgi_get(handler, path):
    """GET path through Django's WSGIHandler, closing the response as a WSGI server does
    (that close fires request_finished, which closes a CONN_MAX_AGE=0 connection)."""
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    wsgiref.util.setup_testing_defaults(environ)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    result = handler(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()
    return seen["status"], seen["headers"], body


# --- pgtally's side -----------------------------------------------------------------------------

class Tally:
    """What pgtally stored for one run, read back from its SQLite file, or (with
    `pg_dsn`) from the `pgtally` schema of a PostgreSQL store: the same tables and columns."""

    def __init__(self, path=None, pg_dsn=None):
        if pg_dsn:
            import psycopg2
            import psycopg2.extras
            db = psycopg2.connect(pg_dsn)
            cur = db.cursor(cursor_factory=psycopg2.extras.RealDictCursor)

            def rows(sql):
                cur.execute(sql.replace(" FROM ", " FROM pgtally."))
                return [dict(r) for r in cur.fetchall()]
        else:
            db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
            db.row_factory = sqlite3.Row

            def rows(sql):
                return [dict(r) for r in db.execute(sql)]
        self.runs = rows("SELECT * FROM runs")
        self.requests = rows("SELECT * FROM requests ORDER BY start_us, id")
        self.normalized = {r["fingerprint"]: r["normalized"]
                           for r in rows("SELECT fingerprint, normalized FROM fingerprints")}
        self.fingerprints = defaultdict(list)
        for r in rows("SELECT * FROM request_fingerprints"):
            self.fingerprints[r["request_id"]].append(r)
        self.findings = defaultdict(list)
        for r in rows("SELECT * FROM findings"):
            self.findings[r["request_id"]].append(r)
        self.timeline = defaultdict(list)  # request id -> normalized text of each statement
        for r in rows("SELECT request_id, fingerprint FROM statements ORDER BY request_id, seq"):
            self.timeline[r["request_id"]].append(self.normalized.get(r["fingerprint"], "?"))
        db.close()


# --- the runs ---------------------------------------------------------------------------------

class DjangoRun:
    """Mixin: setUpClass drives PATHS through the app behind a fresh proxy, stops it with
    SIGTERM and reads its SQLite file; the tests compare the two sides."""

    tagging = None        # settings.PGTALLY_TAGGING
    conn_max_age = None   # None: persistent connection; 0: one connection per request
    atomic_requests = False
    driver_statements = ()  # per request, sent by psycopg2 itself (see DjangoRequest)
    expected_setup = 0    # SET application_name per request
    pg_store = False      # the report store: the proxy's SQLite file, or a PostgreSQL database

    @classmethod
    def setUpClass(cls):
        from django.core.handlers.wsgi import WSGIHandler
        from django.db import connections
        from django.test import override_settings

        cluster = h.module_cluster()
        # The gap is generous: in these runs requests are ended by label change, connection
        # close or shutdown, never by idleness, even on a slow (sanitized) build.
        extra = ["--request-gap", "5"]
        cls.store_dsn = None
        if cls.pg_store:
            # A second database on the same cluster, reached directly (never through the
            # proxy); the later --db wins over the harness's SQLite file.
            cls.store_db = "django_store_%d" % os.getpid()
            cluster.admin_sql("DROP DATABASE IF EXISTS %s" % cls.store_db)
            cluster.admin_sql("CREATE DATABASE %s OWNER %s" % (cls.store_db, h.TRUST_USER))
            cls.store_dsn = "postgres://%s@127.0.0.1:%d/%s" % (h.TRUST_USER, cluster.port,
                                                              cls.store_db)
            extra += ["--db", cls.store_dsn]
        cls.proxy = h.Proxy(cluster, extra_args=extra)
        cls.db_path = cls.proxy.db_path  # the harness gives each proxy its own --db file
        cls.proxy.start()
        conn = connections["default"]
        conn.close()
        conn.settings_dict["PORT"] = str(cls.proxy.port)
        conn.settings_dict["CONN_MAX_AGE"] = cls.conn_max_age
        conn.settings_dict["ATOMIC_REQUESTS"] = cls.atomic_requests
        handler = WSGIHandler()
        cls.django = []
        try:
            with override_settings(PGTALLY_TAGGING=cls.tagging):
                for path in PATHS:
                    recorder = StatementRecorder()
                    with conn.execute_wrapper(recorder):
                        status, headers, body = wsgi_get(handler, path)
                    cls.django.append(DjangoRequest(
                        path, status, body, headers, list(conn.queries), recorder.statements,
                        conn.connection is None, cls.driver_statements))
        finally:
            conn.close()
        cls.result = cls.proxy.stop(signal.SIGTERM)
        if cls.pg_store:
            cls.tally = Tally(pg_dsn=cls.store_dsn)
        else:
            cls.tally = Tally(cls.db_path) if os.path.exists(cls.db_path) else None
        if not h.DIRECT:
            cls.print_table()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.kill()

    @classmethod
    def print_table(cls):
        out = ["", "pgtally vs Django, %s run (%d requests):" % (cls.run_name, len(cls.django)),
               "  %-20s %-15s %-15s %-15s %-15s %s" % ("endpoint", "queries/req", "setup/req",
                                                       "distinct fps", "duplicates",
                                                       "findings (pgtally | Django)")]
        pg = cls.tally.requests if cls.tally else []
        if len(pg) != len(cls.django):
            out.append("  pgtally stored %d requests for %d HTTP requests: %s"
                       % (len(pg), len(cls.django),
                          [(r["key"], r["route"], r["statements"], r["end_reason"]) for r in pg]))
        matched_by_order = not (cls.django and cls.django[0].request_id)
        if matched_by_order and len(pg) != len(cls.django):
            out.append("  (no per-endpoint figures: this run's requests are matched by order)")
            print("\n".join(out), flush=True)
            return
        for path in (ORDERS, FIXED):
            rows = [(d, p) for d, p in cls.matched() if d.path == path and p is not None]

            def fig(get_pg, get_dj):
                a = sorted({str(get_pg(p)) for _, p in rows})
                b = sorted({str(get_dj(d)) for d, _ in rows})
                return "%s vs %s" % ("/".join(a) or "-", "/".join(b) or "-")

            def pg_findings(p):
                return " ".join("%s:%d" % f for f in sorted(
                    (f["kind"], f["count"]) for f in cls.tally.findings[p["id"]])) or "none"

            def dj_findings(d):
                return " ".join("%s:%d" % f for f in d.findings) or "none"

            out.append("  %-20s %-15s %-15s %-15s %-15s %s | %s" % (
                path, fig(lambda p: p["statements"], lambda d: d.statements),
                fig(lambda p: p["setup_statements"], lambda d: d.setup_statements),
                fig(lambda p: p["distinct_fingerprints"], lambda d: d.distinct_fingerprints),
                fig(lambda p: p["duplicates"], lambda d: d.duplicates),
                "/".join(sorted({pg_findings(p) for _, p in rows})) or "-",
                "/".join(sorted({dj_findings(d) for d, _ in rows}))))
        print("\n".join(out), flush=True)

    @classmethod
    def matched(cls):
        """(Django request, pgtally request or None): by request_id where the run tags one,
        else in order of start."""
        pg = cls.tally.requests if cls.tally else []
        if cls.django and cls.django[0].request_id:
            by_key = {p["key"]: p for p in pg}
            return [(d, by_key.get("request_id:" + d.request_id)) for d in cls.django]
        return list(zip(cls.django, pg + [None] * (len(cls.django) - len(pg))))

    # helpers

    def pgtally_side(self):
        """Skips the test in direct mode: there is no proxy, only Django's side to check."""
        if h.DIRECT:
            self.skipTest("PGTALLY_DIRECT=1: no proxy, no SQLite file")

    def pairs(self):
        """(Django request, its pgtally request); fails unless each HTTP request has one.
        Untagged runs are matched by order, so there the counts must agree first."""
        self.pgtally_side()
        self.assertIsNotNone(self.tally, "no SQLite file at %s" % self.db_path)
        pg = self.tally.requests
        listing = [(r["key"], r["route"], r["statements"], r["end_reason"]) for r in pg]
        if not self.django[0].request_id:
            self.assertEqual(len(pg), len(self.django),
                             "pgtally requests (key, route, statements, end_reason): %r"
                             % listing)
        pairs = self.matched()
        self.assertNotIn(None, [p for _, p in pairs], listing)
        return pairs

    def customer_fingerprint(self, d):
        """pgtally's fingerprint of the per-order customer lookup (by its normalized text)."""
        cands = [f for f, n in self.tally.normalized.items()
                 if "djangoapp_customer" in n and "djangoapp_order" not in n]
        self.assertEqual(len(cands), 1, "customer lookup fingerprint among %r"
                         % sorted(self.tally.normalized.values()))
        return cands[0]

    # the tests

    def test_app_served_the_same_json_on_both_endpoints(self):
        bodies = {d.path: json.loads(d.body) for d in self.django}
        for d in self.django:
            self.assertEqual(d.status, "200 OK", d.body[:500])
        self.assertEqual(len(bodies[ORDERS]), 8)
        self.assertEqual(bodies[ORDERS], bodies[FIXED])
        self.assertEqual([bodies["/api/orders/2/"]], [o for o in bodies[ORDERS] if o["id"] == 2])

    def test_recorder_and_connection_queries_agree(self):
        for d in self.django:
            self.assertEqual(len(d.templates), len(d.queries), d.path)

    def test_proxy_exits_0_on_sigterm(self):
        self.pgtally_side()
        self.assertEqual(self.result.returncode, 0, self.result.stderr[-3000:])

    def test_run_total_equals_every_statement_django_ran(self):
        # Nothing outside connection.queries (and the run's known driver statements) reached
        # Postgres: a stray BEGIN or SET TIME ZONE would show here.
        self.pgtally_side()
        self.assertIsNotNone(self.tally)
        self.assertEqual(len(self.tally.runs), 1)
        self.assertEqual(self.tally.runs[0]["statements"],
                         sum(len(d.queries) + len(self.driver_statements) for d in self.django))
        self.assertEqual(self.tally.runs[0]["complete"], 1, self.tally.runs[0])

    def test_one_pgtally_request_per_http_request(self):
        self.pairs()
        self.assertEqual(len(self.tally.requests), len(self.django),
                         [(r["key"], r["route"], r["statements"], r["end_reason"])
                          for r in self.tally.requests])

    def test_statements_per_request_equal_djangos(self):
        for d, p in self.pairs():
            self.assertEqual((p["statements"], p["setup_statements"]),
                             (d.statements, d.setup_statements), d.path)
            self.assertEqual(d.setup_statements, self.expected_setup)

    def test_transactions_per_request_equal_djangos(self):
        for d, p in self.pairs():
            self.assertEqual(p["transactions"], d.transactions, d.path)

    def test_distinct_fingerprints_per_request_equal_djangos(self):
        for d, p in self.pairs():
            self.assertEqual(p["distinct_fingerprints"], d.distinct_fingerprints, d.path)

    def test_duplicates_per_request_equal_djangos(self):
        for d, p in self.pairs():
            self.assertEqual(p["duplicates"], d.duplicates, d.path)

    def test_calls_and_value_sets_per_fingerprint_equal_djangos(self):
        for d, p in self.pairs():
            got = sorted((f["calls"], f["distinct_values"]) for f in self.tally.fingerprints[p["id"]])
            self.assertEqual(got, sorted(d.per_template.values()), d.path)

    def test_findings_equal_those_djangos_queries_imply(self):
        for d, p in self.pairs():
            got = sorted((f["kind"], f["count"]) for f in self.tally.findings[p["id"]])
            self.assertEqual(got, d.findings, d.path)

    def test_n_plus_one_endpoint_flags_the_customer_lookup_once_per_order(self):
        for d, p in self.pairs():
            if d.path != ORDERS:
                continue
            orders = len(json.loads(d.body))
            self.assertEqual(len(d.customer_lookups()), orders)
            fp = self.customer_fingerprint(d)
            found = [f["count"] for f in self.tally.findings[p["id"]]
                     if f["kind"] == "n_plus_one" and f["fingerprint"] == fp]
            self.assertEqual(found, [orders], self.tally.findings[p["id"]])

    def test_fixed_endpoint_has_no_findings(self):
        for d, p in self.pairs():
            if d.path == FIXED:
                self.assertEqual(self.tally.findings[p["id"]], [], d.path)
                self.assertEqual(p["duplicates"], 0)


class SqlcommenterRun(DjangoRun, unittest.TestCase):
    run_name = "sqlcommenter"
    tagging = "sqlcommenter"
    conn_max_age = None

    def test_requests_are_keyed_by_the_request_id_tag(self):
        for d, p in self.pairs():
            self.assertEqual(p["key"], "request_id:" + d.request_id)

    def test_route_tag_is_the_url_pattern_stored_decoded(self):
        # /api/orders/1/ and /api/orders/2/ share the route /api/orders/<int:pk>/.
        for d, p in self.pairs():
            self.assertEqual(p["route"], ROUTE_OF[d.path])

    def test_requests_shared_one_connection(self):
        self.assertEqual(len({p["conn_id"] for _, p in self.pairs()}), 1)


class SqlcommenterPostgresStoreRun(SqlcommenterRun):
    """The sqlcommenter run with its sidecar writing to a PostgreSQL report store: every
    comparison above, read from the store's `pgtally` schema."""

    run_name = "sqlcommenter, PostgreSQL store"
    pg_store = True

    def test_the_store_was_postgresql_and_no_sqlite_file_was_written(self):
        self.assertEqual(len(self.tally.runs), 1)
        self.assertFalse(os.path.exists(self.db_path), self.db_path)
        self.assertEqual(self.result.returncode, 0, self.result.stderr)


class ApplicationNameRun(DjangoRun, unittest.TestCase):
    run_name = "application_name"
    tagging = "application_name"
    conn_max_age = None
    expected_setup = 1

    def test_route_is_the_application_name(self):
        for d, p in self.pairs():
            self.assertEqual(p["route"], ROUTE_OF[d.path])

    def test_requests_end_on_label_change(self):
        reasons = [p["end_reason"] for _, p in self.pairs()]
        self.assertEqual(reasons[:-1], ["label_change"] * (len(reasons) - 1))


class AtomicRequests:
    """Mixin: ATOMIC_REQUESTS=True (a common production setting) on a persistent connection.
    Each request is one transaction whose BEGIN and COMMIT psycopg2 sends untagged; both
    belong to the request they wrap."""

    conn_max_age = None
    atomic_requests = True
    driver_statements = ("BEGIN", "COMMIT")

    def test_each_request_starts_with_its_begin_and_ends_with_its_commit(self):
        for d, p in self.pairs():
            tl = [n.split(" ")[0].lower() for n in self.tally.timeline[p["id"]]]
            self.assertEqual((tl[:1], tl[-1:], tl.count("begin"), tl.count("commit")),
                             (["begin"], ["commit"], 1, 1), (d.path, tl))


class SqlcommenterAtomicRequestsRun(AtomicRequests, DjangoRun, unittest.TestCase):
    run_name = "sqlcommenter + ATOMIC_REQUESTS"
    tagging = "sqlcommenter"

    def test_requests_are_keyed_by_the_request_id_tag(self):
        for d, p in self.pairs():
            self.assertEqual(p["key"], "request_id:" + d.request_id)


class SqlcommenterRouteAtomicRequestsRun(AtomicRequests, DjangoRun, unittest.TestCase):
    """Route/controller/action comments, no request_id: each request is a labelled run, which
    the untagged BEGIN/COMMIT must not break up."""

    run_name = "sqlcommenter route only + ATOMIC_REQUESTS"
    tagging = "sqlcommenter_route"

    def test_route_tag_is_the_route(self):
        for d, p in self.pairs():
            self.assertEqual(p["route"], ROUTE_OF[d.path])


class DocumentedMiddlewareTest(unittest.TestCase):
    """docs/tagging.md shows the middleware the sqlcommenter runs use, byte for byte."""

    def test_docs_show_the_middleware_the_suite_runs(self):
        with open(os.path.join(HERE, "djangoapp", "pgtally_tags.py")) as f:
            code = f.read()
        with open(TAGGING_DOC) as f:
            doc = f.read()
        start = doc.index("```python\n# myapp/pgtally_tags.py\n") + len("```python\n")
        block = doc[start:doc.index("```", start)]
        self.assertEqual(block, "# myapp/pgtally_tags.py\n" + code)


class UntaggedRun(DjangoRun, unittest.TestCase):
    run_name = "untagged, one connection per request"
    tagging = "none"
    conn_max_age = 0

    def test_django_closed_the_connection_after_each_request(self):
        self.assertEqual([d.conn_closed for d in self.django], [True] * len(self.django))

    def test_each_request_is_its_connections_run(self):
        pairs = self.pairs()
        self.assertEqual(len({p["conn_id"] for _, p in pairs}), len(pairs))
        self.assertEqual({p["end_reason"] for _, p in pairs}, {"conn_close"})


if __name__ == "__main__":
    h.main()
