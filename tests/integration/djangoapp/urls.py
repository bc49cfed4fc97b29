"""URL routes of the example app."""

from django.urls import path

from djangoapp.views import OrderDetail, OrderList, OrderListFixed

urlpatterns = [
    path("api/orders/", OrderList.as_view(), name="orders"),
    path("api/orders-fixed/", OrderListFixed.as_view(), name="orders-fixed"),
    path("api/orders/<int:pk>/", OrderDetail.as_view(), name="order"),
]
