#!/usr/bin/python3
"""tests/corpus/gen_orm_corpus.py — deterministic generator of the ORM statement corpus.

Owns: tests/corpus/orm_statements.sql, the statement mix shared by the libpg_query oracle
(tests/unit/test_oracle.c) and the normalizer benchmark (tests/bench/bench_sqlnorm.c).
Format: every statement is terminated by one NUL byte (see README.md in this folder).

Every "call site" below is a function that renders one execution of a statement the way a
given ORM or driver emits it. Each site is executed several times with different literal
values, IN-list and VALUES-row counts, whitespace, keyword case and tag comments, because
that is the variation docs/normalization-spec.md says must not change the fingerprint F. Sites that
differ in structure (other columns, other joins) are genuinely different statements. A few
sites exist in pairs on purpose: they differ only in something pg_query ignores but the spec
keeps (aliases, typmods, positional ORDER BY, spelling), so the oracle exercises every
intended difference.

Stdlib only, fixed seed: the output is byte-identical on every run (checked in).
Usage: /usr/bin/python3 tests/corpus/gen_orm_corpus.py [output-path]
"""

import os
import random
import sys

SEED = 20240611
EXECUTIONS = (3, 8)  # executions per call site, inclusive range

# --------------------------------------------------------------------------------------
# A small shop schema, shared by all ORMs. Column lists are long on purpose: ORMs list
# every column, which is what makes real statements several hundred bytes long.
# --------------------------------------------------------------------------------------
TABLES = {
    "orders": ["id", "customer_id", "status", "currency", "total_cents", "tax_cents",
               "shipping_cents", "discount_code", "note", "billing_address_id",
               "shipping_address_id", "placed_at", "created_at", "updated_at", "version"],
    "order_items": ["id", "order_id", "product_id", "quantity", "unit_price_cents",
                    "discount_cents", "sku", "title", "created_at"],
    "products": ["id", "category_id", "sku", "name", "slug", "description", "price_cents",
                 "stock", "is_active", "attributes", "weight_grams", "brand", "barcode",
                 "tax_class", "meta_title", "meta_description", "created_at", "updated_at"],
    "customers": ["id", "email", "first_name", "last_name", "phone", "is_staff",
                  "date_joined", "last_login", "locale", "marketing_opt_in", "username",
                  "password", "is_active", "is_superuser", "timezone", "avatar_url",
                  "referral_code", "loyalty_points"],
    "categories": ["id", "parent_id", "name", "slug", "position", "is_visible", "description",
                   "image_url", "meta_title", "created_at", "updated_at"],
    "reviews": ["id", "product_id", "customer_id", "rating", "title", "body",
                "is_published", "created_at"],
    "addresses": ["id", "customer_id", "line1", "line2", "city", "postal_code",
                  "country", "is_default", "region", "company", "phone", "delivery_notes",
                  "created_at", "updated_at"],
    "payments": ["id", "order_id", "provider", "provider_ref", "amount_cents", "state",
                 "currency", "failure_code", "failure_message", "refunded_cents",
                 "captured_at", "created_at", "updated_at"],
}

WORDS = ["red", "blue", "green", "widget", "gadget", "deluxe", "mini", "pro", "classic",
         "eco", "steel", "oak", "linen", "wool", "cotton", "bundle", "gift", "sale"]
NAMES = ["O'Brien", "D'Angelo", "Smith", "Müller", "Nguyen", "García", "Kowalski",
         "O'Neil", "Lee", "Dupont", "Ivanova", "Okafor"]
STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled", "refunded"]
ROUTES = ["/api/orders", "/api/orders/<int:pk>", "/api/products", "/cart",
          "/checkout/confirm", "/api/customers/<int:pk>/reviews", "/admin/shop/order/"]

rng = random.Random(SEED)


# --------------------------------------------------------------------------------------
# Literal renderers: every kind of literal the lexer must turn into a placeholder.
# --------------------------------------------------------------------------------------
def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def rand_name():
    return rng.choice(NAMES)


def rand_email():
    return "%s.%s%d@example.%s" % (rng.choice(NAMES).lower().replace("'", "''"),
                                   rng.choice(WORDS), rng.randint(1, 9999),
                                   rng.choice(["com", "org", "de"]))


def rand_ts():
    return "2024-%02d-%02dT%02d:%02d:%02d.%06d+00:00" % (
        rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59),
        rng.randint(0, 59), rng.randint(0, 999999))


def rand_id():
    return str(rng.choice([rng.randint(1, 99), rng.randint(100, 99999),
                           rng.randint(10 ** 6, 10 ** 9)]))


def rand_num():
    kind = rng.randint(0, 6)
    if kind == 0:
        return str(rng.randint(0, 1000))
    if kind == 1:
        return "%d.%02d" % (rng.randint(0, 999), rng.randint(0, 99))
    if kind == 2:
        return "-%d" % rng.randint(1, 500)
    if kind == 3:
        return "%.3e" % rng.uniform(1e-6, 1e6)
    if kind == 4:
        return ".%d" % rng.randint(1, 99)
    if kind == 5:
        return "-%d.%d" % (rng.randint(0, 99), rng.randint(0, 9))
    return "%d." % rng.randint(1, 50)


def rand_bool():
    return rng.choice(["true", "false", "TRUE", "False"])


def sqlcommenter(route, controller, action, framework="django%3A4.2.11",
                 driver="django.db.backends.postgresql", double_percent=False):
    """A sqlcommenter comment; trace/span ids change on every execution."""
    trace = "%032x" % rng.getrandbits(128)
    span = "%016x" % rng.getrandbits(64)
    route_enc = route.replace("/", "%2F").replace("<", "%3C").replace(">", "%3E") \
        .replace(":", "%3A")
    pairs = [("action", action), ("controller", controller), ("db_driver", driver),
             ("framework", framework), ("route", route_enc),
             ("traceparent", "00-%s-%s-01" % (trace, span))]
    text = ",".join("%s='%s'" % kv for kv in pairs)
    if double_percent:
        text = text.replace("%", "%%")
    return "/*" + text + "*/"


def marginalia(controller, action, app="Shop"):
    extra = rng.choice(["", ",line:/app/controllers/%s_controller.rb:%d:in `%s'"
                        % (controller, rng.randint(10, 300), action),
                        ",job:OrderSyncJob"])
    return "/*application:%s,controller:%s,action:%s%s*/" % (app, controller, action, extra)


def datadog():
    return "/*dddbs='shop-db',dde='prod',ddps='shop-web',ddpv='1.%d.%d'*/" % (
        rng.randint(0, 9), rng.randint(0, 30))


# --------------------------------------------------------------------------------------
# Surface variation: whitespace and keyword case. A tiny lexer splits the statement into
# literal/quoted spans (never touched) and code spans, in which runs of spaces may become
# newlines, tabs or indentation and words may change case. A word is never separated from
# a following "(" (R35 keeps that distinction), and adjacent strings never get a newline
# between them (R15 would join them).
# --------------------------------------------------------------------------------------
def split_spans(sql):
    """Yields (is_code, text) spans; strings, quoted identifiers, dollar quotes and
    comments are opaque."""
    i, n, start = 0, len(sql), 0
    spans = []

    def flush(j):
        if j > start:
            spans.append((True, sql[start:j]))

    while i < n:
        c = sql[i]
        end = None
        if c == "'" or (c in "eE" and i + 1 < n and sql[i + 1] == "'"
                        and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_"))):
            backslash = c in "eE"
            j = i + (2 if backslash else 1)
            while j < n:
                if backslash and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            end = j + 1
        elif c == '"':
            j = i + 1
            while j < n:
                if sql[j] == '"':
                    if j + 1 < n and sql[j + 1] == '"':
                        j += 2
                        continue
                    break
                j += 1
            end = j + 1
        elif c == "$" and i + 1 < n and (sql[i + 1] == "$" or sql[i + 1].isalpha()) \
                and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            j = sql.find("$", i + 1)
            tag = sql[i:j + 1]
            if j > 0 and all(ch.isalnum() or ch == "_" for ch in tag[1:-1]):
                k = sql.find(tag, j + 1)
                end = k + len(tag) if k > 0 else None
        elif c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i) + 2
        elif c == "-" and sql.startswith("--", i):
            k = sql.find("\n", i)
            end = n if k < 0 else k
        if end:
            flush(i)
            spans.append((False, sql[i:end]))
            i = start = end
        else:
            i += 1
    flush(n)
    return spans


KEYWORDS = {"select", "from", "where", "and", "or", "not", "in", "order", "by", "limit",
            "offset", "insert", "into", "values", "returning", "update", "set", "delete",
            "join", "inner", "left", "outer", "on", "as", "desc", "asc", "null", "is",
            "group", "having", "count", "distinct", "exists", "like", "ilike", "between",
            "case", "when", "then", "else", "end", "true", "false", "fetch", "first",
            "rows", "only", "next", "with", "union", "all", "coalesce", "sum", "upper",
            "lower", "cast", "interval", "date", "now", "any", "array", "for", "nowait",
            "skip", "locked", "lateral", "exists", "savepoint", "release", "begin",
            "commit", "rollback", "declare", "cursor", "hold", "scroll", "no", "close",
            "forward", "numeric", "varchar", "integer", "bigint", "text", "jsonb",
            "timestamptz", "timestamp", "boolean", "nulls", "last", "default"}


def vary_surface(sql, style):
    """style: 'plain' (unchanged), 'upper', 'lower', 'pretty', 'messy'."""
    if style == "plain":
        return sql
    out = []
    for is_code, text in split_spans(sql):
        if not is_code:
            out.append(text)
            continue
        if style in ("upper", "lower", "messy"):
            words = []
            word = ""
            for ch in text + " ":
                if ch.isalnum() or ch == "_" or ch == "$":
                    word += ch
                    continue
                if word:
                    lw = word.lower()
                    if lw in KEYWORDS and not word[0].isdigit():
                        if style == "upper":
                            word = lw.upper()
                        elif style == "lower":
                            word = lw
                        else:
                            word = rng.choice([lw, lw.upper(), lw.capitalize()])
                    words.append(word)
                    word = ""
                words.append(ch)
            text = "".join(words)[:-1]
        if style in ("pretty", "messy"):
            pieces = text.split(" ")
            rebuilt = pieces[0]
            for p in pieces[1:]:
                if style == "pretty":
                    head = p.split("(")[0].lower()
                    if head in ("from", "where", "and", "order", "group", "limit",
                                "inner", "left", "returning", "values", "set", "having",
                                "offset", "join"):
                        sep = "\n" + rng.choice(["", "  ", "    ", "\t"])
                    else:
                        sep = " "
                else:
                    sep = rng.choice([" ", " ", " ", "  ", "\t", "\n", " \n  ", "\r\n"])
                rebuilt += sep + p
            text = rebuilt
        out.append(text)
    return "".join(out)


def with_comment(sql, comment, where):
    if not comment:
        return sql
    if where == "lead":
        return comment + " " + sql
    return sql + " " + comment


# --------------------------------------------------------------------------------------
# Call sites. Each returns one rendered execution; call sites are grouped by ORM.
# --------------------------------------------------------------------------------------
def dj_cols(table, cols=None):
    cols = cols or TABLES[table]
    return ", ".join('"shop_%s"."%s"' % (table, c) for c in cols)


def dj_tag(route, controller, action):
    return sqlcommenter(route, controller, action) if rng.random() < 0.85 else ""


def django_get(table):
    def site():
        sql = 'SELECT %s FROM "shop_%s" WHERE "shop_%s"."id" = %s LIMIT 21' % (
            dj_cols(table), table, table, rand_id())
        return with_comment(sql, dj_tag("/api/%s/<int:pk>" % table, "%sDetail" % table,
                                        "retrieve"), "trail")
    return site


def django_prefetch(table, fk):
    def site():
        ids = ", ".join(rand_id() for _ in range(rng.choice([1, 2, 3, 5, 8, 13, 21, 40, 100])))
        sql = 'SELECT %s FROM "shop_%s" WHERE "shop_%s"."%s" IN (%s)' % (
            dj_cols(table), table, table, fk, ids)
        return with_comment(sql, dj_tag("/api/orders", "OrderList", "list"), "trail")
    return site


def django_select_related():
    cols = dj_cols("orders") + ", " + ", ".join(
        '"shop_customers"."%s"' % c for c in TABLES["customers"])
    page = rng.choice([20, 50])

    def site():
        status_list = ", ".join(sql_str(s) for s in rng.sample(STATUSES, rng.randint(1, 4)))
        sql = ('SELECT %s FROM "shop_orders" INNER JOIN "shop_customers" ON '
               '("shop_orders"."customer_id" = "shop_customers"."id") WHERE '
               '("shop_orders"."status" IN (%s) AND "shop_orders"."placed_at" >= '
               "'%s'::timestamptz) ORDER BY \"shop_orders\".\"placed_at\" DESC LIMIT %d "
               "OFFSET %d" % (cols, status_list, rand_ts(), page, page * rng.randint(0, 40)))
        return with_comment(sql, dj_tag("/api/orders", "OrderList", "list"), "trail")
    return site


def django_count():
    def site():
        sql = ('SELECT COUNT(*) AS "__count" FROM "shop_reviews" WHERE '
               '("shop_reviews"."product_id" = %s AND "shop_reviews"."is_published")'
               % rand_id())
        return with_comment(sql, dj_tag("/api/products/<int:pk>", "ProductDetail",
                                        "retrieve"), "trail")
    return site


def django_exists():
    def site():
        sql = ('SELECT 1 AS "a" FROM "shop_customers" WHERE "shop_customers"."email" = %s '
               "LIMIT 1" % sql_str(rand_email()))
        return with_comment(sql, dj_tag("/signup", "SignupView", "post"), "trail")
    return site


def django_insert_order():
    cols = TABLES["orders"][1:]

    def site():
        vals = [rand_id(), sql_str(rng.choice(STATUSES)), sql_str("EUR"),
                str(rng.randint(100, 99999)), str(rng.randint(0, 9999)),
                str(rng.randint(0, 999)),
                rng.choice(["NULL", sql_str(rng.choice(WORDS).upper() + "10")]),
                sql_str("Leave at the door, it's fine — %s" % rand_name()),
                rand_id(), rand_id(), "'%s'::timestamptz" % rand_ts(),
                "'%s'::timestamptz" % rand_ts(), "'%s'::timestamptz" % rand_ts(), "1"]
        sql = 'INSERT INTO "shop_orders" (%s) VALUES (%s) RETURNING "shop_orders"."id"' % (
            ", ".join('"%s"' % c for c in cols), ", ".join(vals))
        return with_comment(sql, dj_tag("/checkout/confirm", "CheckoutView", "post"),
                            "trail")
    return site


def django_bulk_create():
    cols = ["order_id", "product_id", "quantity", "unit_price_cents", "discount_cents",
            "sku", "title", "created_at"]

    def site():
        rows = []
        for _ in range(rng.choice([1, 2, 3, 4, 7, 12, 25])):
            rows.append("(%s, %s, %d, %d, %d, %s, %s, '%s'::timestamptz)" % (
                rand_id(), rand_id(), rng.randint(1, 5), rng.randint(100, 9999),
                rng.randint(0, 99), sql_str("SKU-%05d" % rng.randint(0, 99999)),
                sql_str("%s %s" % (rng.choice(WORDS), rng.choice(WORDS))), rand_ts()))
        sql = 'INSERT INTO "shop_order_items" (%s) VALUES %s RETURNING "shop_order_items"."id"' \
            % (", ".join('"%s"' % c for c in cols), ", ".join(rows))
        return with_comment(sql, dj_tag("/checkout/confirm", "CheckoutView", "post"),
                            "trail")
    return site


def django_update_stock():
    def site():
        sql = ('UPDATE "shop_products" SET "stock" = ("shop_products"."stock" - %d), '
               '"updated_at" = \'%s\'::timestamptz WHERE "shop_products"."id" = %s'
               % (rng.randint(1, 5), rand_ts(), rand_id()))
        return with_comment(sql, dj_tag("/checkout/confirm", "CheckoutView", "post"),
                            "trail")
    return site


def django_savepoint(kind):
    def site():
        name = '"s%d_x%d"' % (rng.randint(130000000000000, 140999999999999),
                              rng.randint(1, 40))
        return {"sp": "SAVEPOINT %s", "rel": "RELEASE SAVEPOINT %s",
                "rb": "ROLLBACK TO SAVEPOINT %s"}[kind] % name
    return site


def django_cursor(kind):
    def site():
        name = '"_django_curs_%d_sync_%d"' % (rng.randint(130000000000000, 140999999999999),
                                              rng.randint(1, 30))
        if kind == "declare":
            return ("DECLARE %s NO SCROLL CURSOR WITH HOLD FOR SELECT %s FROM "
                    '"shop_products" WHERE ("shop_products"."is_active" AND '
                    '"shop_products"."price_cents" > %d) ORDER BY "shop_products"."id" ASC'
                    % (name, dj_cols("products"), rng.randint(0, 5000)))
        if kind == "fetch":
            return "FETCH FORWARD %d FROM %s" % (rng.choice([100, 2000]), name)
        return "CLOSE %s" % name
    return site


def django_icontains():
    def site():
        needle = rng.choice(WORDS) + rng.choice(["", "%", "_x", "'s"])
        sql = ('SELECT %s FROM "shop_products" WHERE (UPPER("shop_products"."name"::text) '
               "LIKE UPPER(%s) AND \"shop_products\".\"is_active\") ORDER BY "
               '"shop_products"."name" ASC LIMIT 21'
               % (dj_cols("products"), sql_str("%" + needle.replace("%", "\\%") + "%")))
        return with_comment(sql, dj_tag("/api/products", "ProductList", "list"), "trail")
    return site


def django_jsonb():
    def site():
        color = rng.choice(WORDS)
        sql = ('SELECT %s FROM "shop_products" WHERE ("shop_products"."attributes" -> '
               "'color') = '\"%s\"'::jsonb AND \"shop_products\".\"attributes\" @> "
               "'{\"size\": %d}'::jsonb LIMIT 21"
               % (dj_cols("products"), color, rng.randint(1, 50)))
        return sql
    return site


def django_session():
    def site():
        key = "%032x" % rng.getrandbits(128)
        return ('SELECT "django_session"."session_key", "django_session"."session_data", '
                '"django_session"."expire_date" FROM "django_session" WHERE '
                '("django_session"."expire_date" > \'%s\'::timestamptz AND '
                '"django_session"."session_key" = %s) LIMIT 21' % (rand_ts(), sql_str(key)))
    return site


def django_logged_params():
    """Django's debug log / connection.queries shows %s placeholders before interpolation."""
    def site():
        return ('SELECT %s FROM "shop_customers" WHERE ("shop_customers"."email" = %%s AND '
                '"shop_customers"."is_staff" = %%s) LIMIT 21' % dj_cols("customers"))
    return site


def psycopg3_any():
    """The same filter as django_prefetch(order_items, order_id) written as = ANY(array):
    pg_query fingerprints it like an IN list, the spec keeps the two apart (R29)."""
    def site():
        ids = ", ".join(rand_id() for _ in range(rng.randint(1, 30)))
        return ('SELECT %s FROM "shop_order_items" WHERE "shop_order_items"."order_id" = '
                "ANY(ARRAY[%s]::bigint[])" % (dj_cols("order_items"), ids))
    return site


def psycopg3_any_param():
    """asyncpg / psycopg 3 with server-side binding: the whole list is one array parameter.
    pg_query fingerprints `= ANY($1)` like `IN (...)`; the spec does not (R29)."""
    def site():
        return ('SELECT %s FROM "shop_order_items" WHERE "shop_order_items"."order_id" = '
                "ANY($1)" % dj_cols("order_items"))
    return site


def django_values_list(order):
    """values_list('id', 'email', ...) in two column orders: pg_query hashes the target list
    order-insensitively, the spec keeps the order (R29)."""
    cols = ["id", "email", "last_login"] if order == 0 else ["email", "id", "last_login"]

    def site():
        return ('SELECT %s FROM "shop_customers" WHERE ("shop_customers"."is_active" AND '
                '"shop_customers"."date_joined" >= \'%s\'::timestamptz) ORDER BY '
                '"shop_customers"."id" ASC' % (dj_cols("customers", cols), rand_ts()))
    return site


# ---- Rails / ActiveRecord ------------------------------------------------------------
def rails_tag(controller, action):
    if rng.random() < 0.3:  # Rails 7.1 QueryLogs in sqlcommenter format
        return "/*action='%s',application='Shop',controller='%s',db_host='db-primary',source_location='app/models/%s.rb:%d'*/" % (
            action, controller, controller[:-1], rng.randint(5, 200))
    return marginalia(controller, action) if rng.random() < 0.9 else ""


def rails_find(table, controller):
    def site():
        sql = 'SELECT "%s".* FROM "%s" WHERE "%s"."id" = $1 LIMIT $2' % (table, table, table)
        return with_comment(sql, rails_tag(controller, "show"), rng.choice(["lead", "trail"]))
    return site


def rails_has_many():
    def site():
        sql = ('SELECT "orders".* FROM "orders" WHERE "orders"."customer_id" = $1 AND '
               '"orders"."status" != $2 ORDER BY "orders"."created_at" DESC LIMIT $3 OFFSET $4')
        return with_comment(sql, rails_tag("orders", "index"), "trail")
    return site


def rails_includes(table, fk):
    def site():
        n = rng.choice([1, 2, 3, 4, 6, 10, 17, 30])
        params = ", ".join("$%d" % (i + 1) for i in range(n))
        sql = 'SELECT "%s".* FROM "%s" WHERE "%s"."%s" IN (%s)' % (table, table, table, fk,
                                                                  params)
        return with_comment(sql, rails_tag("orders", "index"), "trail")
    return site


def rails_insert():
    cols = ["customer_id", "status", "currency", "total_cents", "tax_cents", "note",
            "placed_at", "created_at", "updated_at"]

    def site():
        sql = 'INSERT INTO "orders" (%s) VALUES (%s) RETURNING "id"' % (
            ", ".join('"%s"' % c for c in cols),
            ", ".join("$%d" % (i + 1) for i in range(len(cols))))
        return with_comment(sql, rails_tag("checkouts", "create"), "trail")
    return site


def rails_update():
    def site():
        sql = ('UPDATE "products" SET "stock" = $1, "updated_at" = $2 WHERE "products"."id" = '
               '$3')
        return with_comment(sql, rails_tag("checkouts", "create"), "trail")
    return site


def rails_literal_where():
    """prepared_statements: false — values interpolated by the adapter."""
    def site():
        sql = ('SELECT "customers".* FROM "customers" WHERE "customers"."email" = %s AND '
               '"customers"."last_name" = %s AND "customers"."created_at" BETWEEN %s AND %s '
               'LIMIT 1' % (sql_str(rand_email()), sql_str(rand_name()),
                            sql_str(rand_ts()[:10]), sql_str(rand_ts()[:10])))
        return with_comment(sql, rails_tag("sessions", "create"), "lead")
    return site


def rails_insert_all():
    def site():
        rows = ", ".join("(%s, %s, %d, %s, %s)" % (
            rand_id(), rand_id(), rng.randint(1, 5), sql_str(rand_ts()), sql_str(rand_ts()))
            for _ in range(rng.choice([1, 2, 5, 9, 16])))
        sql = ('INSERT INTO "order_items" ("order_id","product_id","quantity","created_at",'
               '"updated_at") VALUES %s ON CONFLICT ("order_id","product_id") DO NOTHING '
               'RETURNING "id"' % rows)
        return with_comment(sql, rails_tag("imports", "create"), "trail")
    return site


def rails_savepoint(kind):
    def site():
        name = "active_record_%d" % rng.randint(1, 4)
        return {"sp": "SAVEPOINT %s", "rel": "RELEASE SAVEPOINT %s",
                "rb": "ROLLBACK TO SAVEPOINT %s"}[kind] % name
    return site


def rails_not_in():
    def site():
        n = rng.randint(1, 12)
        params = ", ".join("$%d" % (i + 2) for i in range(n))
        sql = ('SELECT COUNT(*) FROM "products" WHERE "products"."category_id" = $1 AND '
               '"products"."id" NOT IN (%s)' % params)
        return with_comment(sql, rails_tag("products", "index"), "trail")
    return site


def rails_pluck_renumbered():
    """The same query once numbered from $1 and once with an offset/reversed numbering,
    as happens when a scope is merged: R34 renumbers, pg_query ignores the numbers."""
    def site():
        a, b = rng.choice([(1, 2), (2, 1), (3, 4), (5, 3)])
        sql = ('SELECT "reviews"."rating", "reviews"."title" FROM "reviews" WHERE '
               '"reviews"."product_id" = $%d AND "reviews"."rating" >= $%d' % (a, b))
        return with_comment(sql, rails_tag("reviews", "index"), "trail")
    return site


# ---- Hibernate -------------------------------------------------------------------------
def hib_cols(alias, table):
    return ",".join("%s.%s" % (alias, c) for c in TABLES[table])


def hibernate6_find(table):
    def site():
        return "select %s from %s %s where %s.id=?" % (hib_cols("x1_0", table), table, "x1_0",
                                                      "x1_0")
    return site


def hibernate6_join_page():
    def site():
        return ("select o1_0.id,o1_0.customer_id,c1_0.id,c1_0.email,c1_0.first_name,"
                "c1_0.last_name,o1_0.status,o1_0.total_cents,o1_0.placed_at from orders o1_0 "
                "join customers c1_0 on c1_0.id=o1_0.customer_id where o1_0.status=? and "
                "o1_0.placed_at>=? order by o1_0.placed_at desc offset ? rows fetch first ? "
                "rows only")
    return site


def hibernate6_in_padding():
    def site():
        n = rng.choice([1, 2, 4, 8, 16, 32])
        return "select %s from order_items i1_0 where i1_0.order_id in (%s)" % (
            hib_cols("i1_0", "order_items"), ",".join("?" * n))
    return site


def django_admin_changelist():
    """Django admin: list_select_related over three tables plus a search box, which turns
    every search field into an UPPER(..) LIKE UPPER(..) term. The longest statements of a
    typical Django app."""
    cols = ", ".join([dj_cols("orders"),
                      ", ".join('"shop_customers"."%s"' % c for c in TABLES["customers"]),
                      ", ".join('T4."%s"' % c for c in TABLES["addresses"])])

    def site():
        term = rng.choice(WORDS + NAMES)
        like = sql_str("%" + term + "%")
        search = " OR ".join('UPPER(%s::text) LIKE UPPER(%s)' % (f, like) for f in
                             ['"shop_orders"."note"', '"shop_customers"."email"',
                              '"shop_customers"."last_name"', 'T4."city"'])
        sql = ('SELECT DISTINCT %s FROM "shop_orders" INNER JOIN "shop_customers" ON '
               '("shop_orders"."customer_id" = "shop_customers"."id") LEFT OUTER JOIN '
               '"shop_addresses" T4 ON ("shop_orders"."shipping_address_id" = T4."id") WHERE '
               '("shop_orders"."placed_at" BETWEEN \'%s\'::timestamptz AND \'%s\'::timestamptz AND '
               '(%s)) ORDER BY "shop_orders"."placed_at" DESC, "shop_orders"."id" DESC LIMIT 100 '
               'OFFSET %d' % (cols, rand_ts(), rand_ts(), search, 100 * rng.randint(0, 30)))
        return with_comment(sql, dj_tag("/admin/shop/order/", "OrderAdmin", "changelist_view"),
                            "trail")
    return site


def hibernate6_entity_graph():
    """An @EntityGraph fetch of an order with its customer and shipping address."""
    sel = ",".join([hib_cols("o1_0", "orders"), hib_cols("c1_0", "customers"),
                    hib_cols("s1_0", "addresses")])

    def site():
        return ("select %s from orders o1_0 left join customers c1_0 on c1_0.id=o1_0.customer_id "
                "left join addresses s1_0 on s1_0.id=o1_0.shipping_address_id where o1_0.id=?"
                % sel)
    return site


def hibernate_insert():
    def site():
        return ("insert into order_items (created_at,discount_cents,order_id,product_id,"
                "quantity,sku,title,unit_price_cents,id) values (?,?,?,?,?,?,?,?,?)")
    return site


def hibernate_versioned_update():
    def site():
        return ("update orders set currency=?,customer_id=?,discount_code=?,note=?,status=?,"
                "total_cents=?,updated_at=?,version=? where id=? and version=?")
    return site


def hibernate_nextval():
    def site():
        return "select nextval('order_items_seq')"
    return site


def hibernate5_find_aliases(style):
    """Hibernate 5 vs a hand-tuned variant: identical but for column alias names. pg_query
    ignores ResTarget names, the spec keeps aliases (R29)."""
    def site():
        cols = TABLES["customers"]
        if style == 5:
            sel = ", ".join("customer0_.%s as %s%d_0_0_" % (c, c[:8], i + 1)
                            for i, c in enumerate(cols))
        else:
            sel = ", ".join("customer0_.%s as %s_%d" % (c, c, i) for i, c in enumerate(cols))
        return "select %s from customers customer0_ where customer0_.id=?" % sel
    return site


# ---- SQLAlchemy ------------------------------------------------------------------------
def sa_cols(table, alias=None):
    a = alias or table
    return ", ".join("%s.%s AS %s_%s" % (a, c, a, c) for c in TABLES[table])


def sa_tag():
    if rng.random() < 0.85:
        return sqlcommenter(rng.choice(ROUTES), "index", "get", framework="flask%3A3.0.2",
                            driver="psycopg2", double_percent=rng.random() < 0.5)
    return ""


def sqlalchemy_get_named():
    def site():
        sql = ("SELECT %s FROM customers WHERE customers.id = %%(pk_1)s" % sa_cols("customers"))
        return with_comment(sql, sa_tag(), "trail")
    return site


def sqlalchemy_get_literal():
    """The same statement after psycopg2 interpolated the parameter client-side."""
    def site():
        sql = ("SELECT %s FROM customers WHERE customers.id = %s" % (sa_cols("customers"),
                                                                    rand_id()))
        return with_comment(sql, sa_tag(), "trail")
    return site


def sqlalchemy_anon_join():
    def site():
        return ("SELECT anon_1.orders_id AS anon_1_orders_id, anon_1.orders_status AS "
                "anon_1_orders_status, anon_1.orders_total_cents AS anon_1_orders_total_cents, "
                "order_items_1.id AS order_items_1_id, order_items_1.sku AS order_items_1_sku, "
                "order_items_1.quantity AS order_items_1_quantity FROM (SELECT orders.id AS "
                "orders_id, orders.status AS orders_status, orders.total_cents AS "
                "orders_total_cents FROM orders WHERE orders.customer_id = %d ORDER BY "
                "orders.placed_at DESC\n LIMIT %d OFFSET %d) AS anon_1 LEFT OUTER JOIN "
                "order_items AS order_items_1 ON anon_1.orders_id = order_items_1.order_id "
                "ORDER BY anon_1.orders_placed_at DESC, order_items_1.id"
                % (rng.randint(1, 99999), rng.choice([10, 25]), rng.randint(0, 20) * 10))
    return site


def sqlalchemy_expanding_in():
    def site():
        n = rng.randint(1, 15)
        params = ", ".join("%%(id_1_%d)s" % (i + 1) for i in range(n))
        return "SELECT %s FROM products WHERE products.id IN (%s)" % (sa_cols("products"),
                                                                     params)
    return site


def sqlalchemy_expanding_in_literal():
    def site():
        n = rng.randint(1, 15)
        return "SELECT %s FROM products WHERE products.id IN (%s)" % (
            sa_cols("products"), ", ".join(rand_id() for _ in range(n)))
    return site


def sqlalchemy_insertmanyvalues():
    def site():
        n = rng.choice([1, 2, 3, 10, 50])
        rows = ", ".join("(%%(product_id__%d)s, %%(customer_id__%d)s, %%(rating__%d)s, "
                         "%%(title__%d)s, %%(body__%d)s, %%(is_published__%d)s)"
                         % ((i,) * 6) for i in range(n))
        return ("INSERT INTO reviews (product_id, customer_id, rating, title, body, "
                "is_published) VALUES %s RETURNING reviews.id" % rows)
    return site


def sqlalchemy_insert_literal():
    def site():
        n = rng.choice([1, 2, 3, 6])
        rows = ", ".join("(%s, %s, %d, %s, E'%s', %s)" % (
            rand_id(), rand_id(), rng.randint(1, 5), sql_str(rng.choice(WORDS).title()),
            rng.choice(["Great!\\nWould buy again.", "It\\'s ok", "tab\\there",
                        "back\\\\slash"]), rand_bool()) for _ in range(n))
        return ("INSERT INTO reviews (product_id, customer_id, rating, title, body, "
                "is_published) VALUES %s RETURNING reviews.id" % rows)
    return site


# ---- Prisma / node ---------------------------------------------------------------------
def prisma_find_unique():
    def site():
        cols = ",".join('"public"."Customer"."%s"' % c for c in
                        ["id", "email", "firstName", "lastName", "createdAt", "updatedAt"])
        return ('SELECT %s FROM "public"."Customer" WHERE ("public"."Customer"."id" = $1 AND 1=1) '
                "LIMIT $2 OFFSET $3" % cols)
    return site


def prisma_relation_load():
    def site():
        n = rng.randint(1, 25)
        cols = ",".join('"public"."Post"."%s"' % c for c in
                        ["id", "title", "published", "authorId", "createdAt"])
        params = ",".join("$%d" % (i + 1) for i in range(n))
        return ('SELECT %s FROM "public"."Post" WHERE "public"."Post"."authorId" IN (%s) '
                "OFFSET $%d" % (cols, params, n + 1))
    return site


def prisma_create():
    def site():
        return ('INSERT INTO "public"."Post" ("title","published","authorId","createdAt") '
                'VALUES ($1,$2,$3,$4) RETURNING "public"."Post"."id", "public"."Post"."title", '
                '"public"."Post"."published", "public"."Post"."authorId", '
                '"public"."Post"."createdAt"')
    return site


def knex_select():
    def site():
        return ('select "orders".*, "customers"."email" from "orders" inner join "customers" on '
                '"customers"."id" = "orders"."customer_id" where "orders"."status" = ? and '
                '"orders"."total_cents" > ? order by "orders"."placed_at" desc limit ?')
    return site


def sequelize_find():
    def site():
        return ('SELECT "id", "email", "firstName", "lastName", "createdAt", "updatedAt" FROM '
                '"Customers" AS "Customer" WHERE "Customer"."email" = %s AND '
                '"Customer"."deletedAt" IS NULL LIMIT 1;' % sql_str(rand_email()))
    return site


def typeorm_find():
    def site():
        n = rng.randint(1, 10)
        return ('SELECT "Product"."id" AS "Product_id", "Product"."name" AS "Product_name", '
                '"Product"."price_cents" AS "Product_price_cents" FROM "products" "Product" '
                'WHERE "Product"."id" IN (%s)' % ", ".join("$%d" % (i + 1) for i in range(n)))
    return site


def gorm_first():
    def site():
        return ('SELECT * FROM "customers" WHERE "customers"."email" = %s AND '
                '"customers"."deleted_at" IS NULL ORDER BY "customers"."id" LIMIT 1'
                % sql_str(rand_email()))
    return site


# ---- Hand-written / reporting SQL: every literal kind ---------------------------------
def report_revenue(order_pos):
    """Positional ORDER BY / GROUP BY: the spec keeps the integers (R26), pg_query does not."""
    def site():
        return ("SELECT date_trunc('day', o.placed_at) AS day, o.currency, "
                "sum(o.total_cents)::numeric(14, 2) / 100 AS revenue, count(*) AS orders "
                "FROM orders o WHERE o.placed_at >= now() - interval '%d days' AND o.status "
                "NOT IN ('cancelled', 'refunded') GROUP BY 1, 2 ORDER BY %d DESC, 2"
                % (rng.randint(1, 90), order_pos))
    return site


def report_typmod(width):
    """Typmods stay verbatim (R27); pg_query ignores them."""
    def site():
        return ("SELECT p.id, CAST(p.name AS varchar(%d)) AS short_name, "
                "p.price_cents::numeric(12, 2) / 100 AS price FROM products p WHERE p.sku = %s"
                % (width, sql_str("SKU-%05d" % rng.randint(0, 99999))))
    return site


def report_literals():
    def site():
        return ("SELECT %s AS a, E'%s' AS b, $body$%s$body$ AS c, %s AS d, %s AS e, "
                "B'%s' AS f, X'%X' AS g, U&'d\\0061t' AS h, '%s'::date AS i, "
                "'{%d,%d,%d}'::int[] AS j, %s AS k, NULL AS l, interval '%d minutes' AS m, "
                "CAST(%s AS numeric(10, 2)) AS n, ARRAY[%s] AS o FROM customers WHERE id = %s"
                % (sql_str(rand_name()),
                   rng.choice(["line1\\nline2", "it\\'s", "c:\\\\tmp", "\\x41"]),
                   rng.choice(["it's $1 ; -- not a comment", "plain", "O'Brien said 'hi'"]),
                   rand_num(), rand_num(), "".join(rng.choice("01") for _ in range(8)),
                   rng.randint(0, 255), rand_ts()[:10], rng.randint(0, 9), rng.randint(0, 9),
                   rng.randint(0, 9), rand_bool(), rng.randint(1, 59), rand_num(),
                   ", ".join(str(rng.randint(0, 99)) for _ in range(rng.randint(1, 6))),
                   rand_id()))
    return site


def report_limit_spelling(fetch_first):
    """LIMIT n and FETCH FIRST n ROWS ONLY parse to the same tree; the lexer keeps the
    spelling (R29)."""
    def site():
        tail = ("FETCH FIRST %d ROWS ONLY" if fetch_first else "LIMIT %d") % rng.randint(5, 50)
        return ("SELECT r.product_id, avg(r.rating) AS avg_rating, count(*) AS n FROM reviews r "
                "WHERE r.is_published AND r.created_at > '%s' GROUP BY r.product_id HAVING "
                "count(*) >= %d ORDER BY avg_rating DESC %s" % (rand_ts(), rng.randint(3, 20),
                                                                tail))
    return site


def report_quoting(quoted):
    """"id" and id are the same identifier to PG; the spec keeps quoting verbatim (R10)."""
    def site():
        c = (lambda x: '"%s"' % x) if quoted else (lambda x: x)
        return ("SELECT %s, %s, %s FROM %s WHERE %s = %s AND %s > %s" % (
            c("id"), c("email"), c("last_login"), c("customers"), c("id"), rand_id(),
            c("last_login"), sql_str(rand_ts())))
    return site


def report_cte():
    def site():
        return ("WITH recent AS (SELECT customer_id, max(placed_at) AS last_order FROM orders "
                "WHERE placed_at > now() - interval '%d days' GROUP BY customer_id), spend AS "
                "(SELECT customer_id, sum(total_cents) AS cents FROM orders WHERE status = %s "
                "GROUP BY customer_id HAVING sum(total_cents) > %d) SELECT c.id, c.email, "
                "r.last_order, s.cents FROM customers c JOIN recent r ON r.customer_id = c.id "
                "LEFT JOIN spend s ON s.customer_id = c.id WHERE c.marketing_opt_in = %s AND "
                "c.locale IN (%s) ORDER BY s.cents DESC NULLS LAST LIMIT %d"
                % (rng.randint(7, 120), sql_str(rng.choice(STATUSES)), rng.randint(0, 10 ** 6),
                   rand_bool(), ", ".join(sql_str(x) for x in
                                          rng.sample(["en", "de", "fr", "es", "pl"],
                                                     rng.randint(1, 5))),
                   rng.randint(10, 500)))
    return site


def report_lateral_for_update():
    def site():
        return ("SELECT o.id, o.status, p.state FROM orders o JOIN LATERAL (SELECT state FROM "
                "payments WHERE payments.order_id = o.id ORDER BY created_at DESC LIMIT 1) p ON "
                "true WHERE o.id = %s AND o.total_cents BETWEEN %s AND %s FOR UPDATE OF o "
                "SKIP LOCKED" % (rand_id(), str(-rng.randint(0, 100)), str(rng.randint(1, 10 ** 6))))
    return site


def report_jsonb_ops():
    def site():
        return ("SELECT id, attributes->>'color' AS color, attributes #> '{dims,w}' AS w FROM "
                "products WHERE attributes ? %s AND attributes ?| array[%s] AND attributes @? "
                "'$.tags[*] ? (@ == \"%s\")' AND weight_grams - %d > 0"
                % (sql_str(rng.choice(WORDS)),
                   ", ".join(sql_str(w) for w in rng.sample(WORDS, rng.randint(1, 4))),
                   rng.choice(WORDS), rng.randint(0, 500)))
    return site


def report_values_join():
    def site():
        rows = ", ".join("(%s, %s)" % (rand_id(), sql_str(rng.choice(STATUSES)))
                         for _ in range(rng.randint(1, 12)))
        return ("UPDATE orders AS o SET status = v.status, updated_at = now() FROM (VALUES %s) "
                "AS v(id, status) WHERE o.id = v.id::bigint" % rows)
    return site


def report_set_search_path():
    def site():
        return "SET search_path = %s, public" % sql_str("tenant_%d" % rng.randint(1, 500))
    return site


def report_do_block():
    def site():
        return ("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'orders_%d') "
                "THEN RAISE NOTICE 'missing'; END IF; END $$" % rng.randint(2020, 2030))
    return site


def plain_tx(word):
    def site():
        return word
    return site


# --------------------------------------------------------------------------------------
# The site list: (name, site function, surface styles allowed, comment policy).
# --------------------------------------------------------------------------------------
def build_sites():
    s = []

    def add(name, fn, styles=("plain",), reps=EXECUTIONS):
        s.append((name, fn, styles, reps))
    short = (1, 3)  # transaction control and friends: frequent in life, tiny in bytes
    heavy = (8, 16)  # wide ORM selects dominate real traffic by bytes
    any_ws = ("plain", "plain", "upper", "lower", "pretty", "messy")
    for t in ["orders", "products", "customers", "categories", "addresses", "payments"]:
        add("django.get.%s" % t, django_get(t), any_ws, heavy)
    add("django.prefetch.order_items", django_prefetch("order_items", "order_id"), any_ws, heavy)
    add("django.prefetch.reviews", django_prefetch("reviews", "product_id"), any_ws, heavy)
    add("django.prefetch.payments", django_prefetch("payments", "order_id"), any_ws)
    add("django.prefetch.addresses", django_prefetch("addresses", "customer_id"), any_ws)
    add("django.select_related", django_select_related(), any_ws, heavy)
    add("django.select_related.b", django_select_related(), any_ws, heavy)
    add("django.admin_changelist", django_admin_changelist(), any_ws, heavy)
    add("django.count", django_count(), any_ws)
    add("django.exists", django_exists(), any_ws)
    add("django.insert_order", django_insert_order(), any_ws, heavy)
    add("django.bulk_create", django_bulk_create(), any_ws, heavy)
    add("django.update_stock", django_update_stock(), any_ws)
    for k in ["sp", "rel", "rb"]:
        add("django.savepoint.%s" % k, django_savepoint(k), any_ws, short)
    for k in ["declare", "fetch", "close"]:
        add("django.cursor.%s" % k, django_cursor(k), any_ws, short if k != "declare" else EXECUTIONS)
    add("django.icontains", django_icontains(), any_ws, heavy)
    add("django.jsonb", django_jsonb(), any_ws)
    add("django.session", django_session(), any_ws)
    add("django.logged_params", django_logged_params(), any_ws)
    add("psycopg3.any", psycopg3_any(), any_ws)
    add("psycopg3.any_param", psycopg3_any_param(), any_ws)
    add("django.values_list.a", django_values_list(0), any_ws)
    add("django.values_list.b", django_values_list(1), any_ws)
    for t, c in [("customers", "customers"), ("products", "products"), ("orders", "orders")]:
        add("rails.find.%s" % t, rails_find(t, c), any_ws)
    add("rails.has_many", rails_has_many(), any_ws)
    add("rails.includes.order_items", rails_includes("order_items", "order_id"), any_ws)
    add("rails.includes.payments", rails_includes("payments", "order_id"), any_ws)
    add("rails.insert", rails_insert(), any_ws)
    add("rails.update", rails_update(), any_ws)
    add("rails.literal_where", rails_literal_where(), any_ws)
    add("rails.insert_all", rails_insert_all(), any_ws, heavy)
    for k in ["sp", "rel", "rb"]:
        add("rails.savepoint.%s" % k, rails_savepoint(k), any_ws, short)
    add("rails.not_in", rails_not_in(), any_ws)
    add("rails.renumbered", rails_pluck_renumbered(), any_ws)
    for t in ["orders", "customers", "products", "reviews"]:
        add("hibernate6.find.%s" % t, hibernate6_find(t), any_ws)
    add("hibernate6.join_page", hibernate6_join_page(), any_ws)
    add("hibernate6.entity_graph", hibernate6_entity_graph(), any_ws, heavy)
    add("hibernate6.in_padding", hibernate6_in_padding(), any_ws)
    add("hibernate.insert", hibernate_insert(), any_ws)
    add("hibernate.versioned_update", hibernate_versioned_update(), any_ws)
    add("hibernate.nextval", hibernate_nextval(), any_ws, short)
    add("hibernate5.aliases", hibernate5_find_aliases(5), any_ws)
    add("hibernate5.aliases.tuned", hibernate5_find_aliases(6), any_ws)
    add("sqlalchemy.get_named", sqlalchemy_get_named(), any_ws)
    add("sqlalchemy.get_literal", sqlalchemy_get_literal(), any_ws, heavy)
    add("sqlalchemy.anon_join", sqlalchemy_anon_join(), any_ws, heavy)
    add("sqlalchemy.expanding_in", sqlalchemy_expanding_in(), any_ws)
    add("sqlalchemy.expanding_in_literal", sqlalchemy_expanding_in_literal(), any_ws, heavy)
    add("sqlalchemy.insertmanyvalues", sqlalchemy_insertmanyvalues(), any_ws)
    add("sqlalchemy.insert_literal", sqlalchemy_insert_literal(), any_ws)
    add("prisma.find_unique", prisma_find_unique(), any_ws)
    add("prisma.relation_load", prisma_relation_load(), any_ws)
    add("prisma.create", prisma_create(), any_ws)
    add("knex.select", knex_select(), any_ws)
    add("sequelize.find", sequelize_find(), any_ws)
    add("typeorm.find", typeorm_find(), any_ws)
    add("gorm.first", gorm_first(), any_ws)
    add("report.revenue.order1", report_revenue(1), any_ws)
    add("report.revenue.order3", report_revenue(3), any_ws)
    add("report.typmod.40", report_typmod(40), any_ws)
    add("report.typmod.80", report_typmod(80), any_ws)
    add("report.literals", report_literals(), any_ws)
    add("report.limit", report_limit_spelling(False), any_ws)
    add("report.fetch_first", report_limit_spelling(True), any_ws)
    add("report.quoted", report_quoting(True), any_ws)
    add("report.unquoted", report_quoting(False), any_ws)
    add("report.cte", report_cte(), any_ws, heavy)
    add("report.lateral_for_update", report_lateral_for_update(), any_ws)
    add("report.jsonb_ops", report_jsonb_ops(), any_ws)
    add("report.values_join", report_values_join(), any_ws)
    add("report.set_search_path", report_set_search_path(), any_ws, short)
    add("report.do_block", report_do_block(), ("plain", "upper", "lower"))
    for w in ["BEGIN", "COMMIT", "ROLLBACK"]:
        add("tx.%s" % w.lower(), plain_tx(w), ("plain", "lower"), short)
    return s


NODE_ORMS = {"prisma": "prisma", "knex": "knex%3A2.5.1", "sequelize": "sequelize%3A6.35.2",
             "typeorm": "typeorm%3A0.3.17"}


def generate():
    sites = build_sites()
    stmts = []
    # Three passes over the sites, interleaved, so executions of one site are spread over
    # the file the way they are spread over a request log.
    for _ in range(3):
        for name, fn, styles, reps in sites:
            for _ in range(rng.randint(*reps)):
                sql = vary_surface(fn(), rng.choice(styles))
                if name.split(".")[0] in NODE_ORMS and rng.random() < 0.6:
                    # google/sqlcommenter-nodejs for knex, Sequelize, Prisma and TypeORM
                    sql = with_comment(sql, sqlcommenter(
                        rng.choice(ROUTES), "express", rng.choice(["get", "post"]),
                        framework="express%3A4.18.2", driver=NODE_ORMS[name.split(".")[0]]),
                        "trail")
                if rng.random() < 0.08:
                    sql = datadog() + " " + sql
                if rng.random() < 0.05:
                    sql = sql + " -- " + rng.choice(["hot path", "see ticket 4411"])
                stmts.append(sql)
    return stmts


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "orm_statements.sql")
    stmts = generate()
    data = b"".join(s.encode("utf-8") + b"\0" for s in stmts)
    assert all(b"\0" not in s.encode("utf-8") for s in stmts)
    with open(out_path, "wb") as f:
        f.write(data)
    total = sum(len(s.encode("utf-8")) for s in stmts)
    sys.stderr.write("%s: %d statements, %d bytes, average %.0f bytes\n"
                     % (out_path, len(stmts), total, total / len(stmts)))


if __name__ == "__main__":
    main()
