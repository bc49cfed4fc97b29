"""An example Django + Django REST Framework shop whose queries pgtally must tally exactly.

Owns: the models (Customer, Product, Order, OrderItem, Setting), the two endpoints
`/api/orders/` (N+1 and duplicate lookups on purpose) and `/api/orders-fixed/` (the same JSON
with select_related/prefetch_related and one settings lookup), the request-tagging middleware
(sqlcommenter comments or `SET application_name`), and the seed data. The project and the app
are this one package (app label `djangoapp`), so tests import it with nothing installed.

Used by tests/integration/test_django.py, which drives it in-process through pgtally. To run it
by hand against any Postgres (Debian's python3-django, python3-djangorestframework and
python3-psycopg2; no PyPI):

    cd tests/integration
    DJANGOAPP_DB_PORT=6432 /usr/bin/python3 -m djangoapp.manage runserver 8000

with the tables created by `djangoapp.seed.create_schema_and_data()` (see seed.py).
"""
