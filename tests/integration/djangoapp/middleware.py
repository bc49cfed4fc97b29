"""Request tagging: how each HTTP request tells pgtally which statements are its own.

settings.PGTALLY_TAGGING picks one of:
  sqlcommenter      every statement gets `/*action='get',controller='OrderList',
                    request_id='<uuid4>',route='%2Fapi%2Forders%2F'*/` appended, in the
                    sqlcommenter format (keys sorted, values URL-encoded with nothing left
                    safe, in single quotes);
  sqlcommenter_route  the same without request_id (route, controller, action only: what
                    sqlcommenter's own Django middleware adds unless OpenTelemetry is on);
  application_name  the request starts with `SET application_name = '<route>'`, no comments;
  none              nothing: pgtally must fall back to the connection's own run.
"""

import uuid
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.urls import resolve


def sqlcommenter_comment(tags):
    """The sqlcommenter comment for tags {key: value}, with its leading space."""
    pairs = ["%s='%s'" % (quote(k, safe=""), quote(str(v), safe=""))
             for k, v in sorted(tags.items())]
    return " /*" + ",".join(pairs) + "*/"


class SqlCommenter:
    """A connection.execute_wrapper that appends one request's comment to every statement."""

    def __init__(self, tags):
        self.comment = sqlcommenter_comment(tags)

    def __call__(self, execute, sql, params, many, context):
        # psycopg2 %-formats the SQL only when params are given: URL-encoding leaves '%' in the
        # comment, which must then be doubled to reach the server as a single '%'.
        comment = self.comment if params is None else self.comment.replace("%", "%%")
        return execute(sql + comment, params, many, context)


def route_of(request):
    """'/api/orders/' for the URL pattern that serves request (not its concrete path)."""
    return "/" + resolve(request.path_info).route


class RequestTaggingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        mode = settings.PGTALLY_TAGGING
        if mode in ("sqlcommenter", "sqlcommenter_route"):
            match = resolve(request.path_info)
            tags = {
                "route": "/" + match.route,
                "controller": match.func.__name__,
                "action": request.method.lower(),
            }
            if mode == "sqlcommenter":
                tags["request_id"] = str(uuid.uuid4())
            with connection.execute_wrapper(SqlCommenter(tags)):
                response = self.get_response(request)
            if "request_id" in tags:
                # Tells a test which pgtally request this HTTP request became.
                response["X-Request-Id"] = tags["request_id"]
            return response
        if mode == "application_name":
            with connection.cursor() as cursor:
                cursor.execute("SET application_name = %s", [route_of(request)])
            return self.get_response(request)
        if mode == "none":
            return self.get_response(request)
        raise ValueError("PGTALLY_TAGGING must be sqlcommenter, application_name or none: %r"
                         % (mode,))
