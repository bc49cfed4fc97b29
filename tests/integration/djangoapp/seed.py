"""Creates the example app's tables and its small, fixed data set (no migrations to keep).

Eight orders by three customers (so the per-order customer lookup repeats some values), one to
three items each over five products, and the `currency` setting.
"""

from django.db import connections

from djangoapp.models import Customer, Order, OrderItem, Product, Setting

MODELS = [Customer, Product, Order, OrderItem, Setting]
ORDER_CUSTOMERS = [0, 1, 0, 2, 1, 0, 2, 1]  # index into CUSTOMERS, one per order
CUSTOMERS = [("Ada Lovelace", "ada@example.org"), ("Grace Hopper", "grace@example.org"),
             ("Edsger Dijkstra", "ewd@example.org")]
PRODUCTS = [("Widget", 250), ("Gadget", 1200), ("Sprocket", 75), ("Flange", 310),
            ("Gizmo", 990)]


def items_of(order_index):
    """(product index, quantity) pairs of one order: 1..3 items."""
    return [((order_index + j) % len(PRODUCTS), j + 1) for j in range(order_index % 3 + 1)]


def create_schema_and_data(using="default"):
    with connections[using].schema_editor() as editor:
        for model in MODELS:
            editor.create_model(model)
    customers = [Customer.objects.using(using).create(name=n, email=e) for n, e in CUSTOMERS]
    products = [Product.objects.using(using).create(name=n, price_cents=p) for n, p in PRODUCTS]
    for i, c in enumerate(ORDER_CUSTOMERS):
        order = Order.objects.using(using).create(customer=customers[c], number="A-%04d" % (i + 1))
        for p, q in items_of(i):
            OrderItem.objects.using(using).create(order=order, product=products[p], quantity=q)
    Setting.objects.using(using).create(key="currency", value="EUR")
