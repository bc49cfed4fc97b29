"""Tags every SQL statement of a Django request for pgtally, in the sqlcommenter format.

Add "myapp.pgtally_tags.PgtallyTagsMiddleware" to MIDDLEWARE. Each statement then carries
request_id (a fresh UUID, also sent back as the X-Request-Id header), route (the URL pattern
that served the request, e.g. /api/orders/<int:pk>/), controller (the view) and action (the
HTTP method).
"""

import contextlib
import uuid
from urllib.parse import quote

from django.db import connections
from django.urls import Resolver404, resolve


def sqlcommenter_comment(tags):
    """' /*key='value',...*/': keys sorted, values URL-encoded with nothing left safe."""
    pairs = ["%s='%s'" % (quote(k, safe=""), quote(str(v), safe=""))
             for k, v in sorted(tags.items())]
    return " /*" + ",".join(pairs) + "*/"


def route_and_view(request):
    """The URL pattern and view name that serve request. Middleware runs before Django
    resolves the URL (request.resolver_match is still None here), so resolve it now: the route
    must be the pattern, never the concrete path, or every object id becomes a route of its
    own and per-route budgets stop working."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return "(unmatched)", "none"
    view = getattr(match.func, "view_class", match.func)  # class-based views
    return "/" + match.route, view.__name__


class PgtallyTagsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        route, view = route_and_view(request)
        tags = {"request_id": str(uuid.uuid4()), "route": route, "controller": view,
                "action": request.method.lower()}
        comment = sqlcommenter_comment(tags)

        def add_comment(execute, sql, params, many, context):
            # With params the driver %-formats the SQL: the URL-encoded comment's '%' must be
            # doubled to reach the server as one '%' (pgtally also accepts '%%').
            tail = comment if params is None else comment.replace("%", "%%")
            return execute(sql + tail, params, many, context)

        with contextlib.ExitStack() as stack:
            for connection in connections.all():
                stack.enter_context(connection.execute_wrapper(add_comment))
            response = self.get_response(request)
        response.setdefault("X-Request-Id", tags["request_id"])
        return response
