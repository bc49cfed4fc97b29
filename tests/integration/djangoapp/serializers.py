"""DRF serializers shared by both order endpoints: the nesting (customer, items, product) is what
turns into one query per order / per item unless the view prefetches."""

from rest_framework import serializers

from djangoapp.models import Customer, Order, OrderItem, Product, Setting


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "name", "email"]


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "name", "price_cents"]


class OrderItemSerializer(serializers.ModelSerializer):
    product = ProductSerializer()

    class Meta:
        model = OrderItem
        fields = ["id", "product", "quantity"]


class OrderSerializer(serializers.ModelSerializer):
    customer = CustomerSerializer()
    items = OrderItemSerializer(many=True)
    currency = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = ["id", "number", "customer", "items", "currency"]

    def get_currency(self, order):
        # The fixed view looks the setting up once and passes it in the context; the naive one
        # leaves it to this method, which asks the database again for every order.
        if "currency" in self.context:
            return self.context["currency"]
        return Setting.objects.get(key="currency").value
