"""The order endpoints: a list, the same JSON once naively (N+1 and duplicates) and once fixed,
and one order by id (a route with a parameter: its requests must share one route)."""

from rest_framework import generics

from djangoapp.models import Order, Setting
from djangoapp.serializers import OrderSerializer


class OrderList(generics.ListAPIView):
    """One query for the orders, then per order: its customer, its items, the currency
    setting (the same row every time) and per item its product."""

    serializer_class = OrderSerializer
    queryset = Order.objects.all()


class OrderListFixed(generics.ListAPIView):
    """The same data in four queries: orders joined with customers, items, products, and the
    currency setting once."""

    serializer_class = OrderSerializer

    def get_queryset(self):
        return Order.objects.select_related("customer").prefetch_related("items__product")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["currency"] = Setting.objects.get(key="currency").value
        return context


class OrderDetail(generics.RetrieveAPIView):
    """One order by id, serialized naively like OrderList."""

    serializer_class = OrderSerializer
    queryset = Order.objects.all()
