"""Request tagging: how each HTTP request tells pgtally which statements are its own.

settings.PGTALLY_TAGGING picks one of:
  sqlcommenter      the middleware docs/tagging.md shows (djangoapp/pgtally_tags.py, run
                    verbatim): every statement gets `/*action='get',controller='OrderList',
                    request_id='<uuid4>',route='%2Fapi%2Forders%2F'*/` appended;
  sqlcommenter_route  the same without request_id (route, controller, action only: what
                    sqlcommenter's own Django middleware adds unless OpenTelemetry is on);
  application_name  the request starts with `SET application_name = '<route>'`, no comments;
  none              nothing: pgtally must fall back to the connection's own run.
"""

from django.conf import settings
from django.db import connection

from djangoapp.pgtally_tags import PgtallyTagsMiddleware, route_and_view, sqlcommenter_comment


class RouteOnlyCommenter:
    """A connection.execute_wrapper that appends route/controller/action to every statement."""

    def __init__(self, tags):
        self.comment = sqlcommenter_comment(tags)

    def __call__(self, execute, sql, params, many, context):
        comment = self.comment if params is None else self.comment.replace("%", "%%")
        return execute(sql + comment, params, many, context)


class RequestTaggingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.documented = PgtallyTagsMiddleware(get_response)

    def __call__(self, request):
        mode = settings.PGTALLY_TAGGING
        if mode == "sqlcommenter":
            return self.documented(request)
        route, view = route_and_view(request)
        if mode == "sqlcommenter_route":
            tags = {"route": route, "controller": view, "action": request.method.lower()}
            with connection.execute_wrapper(RouteOnlyCommenter(tags)):
                return self.get_response(request)
        if mode == "application_name":
            with connection.cursor() as cursor:
                cursor.execute("SET application_name = %s", [route])
            return self.get_response(request)
        if mode == "none":
            return self.get_response(request)
        raise ValueError("PGTALLY_TAGGING must be sqlcommenter, sqlcommenter_route, "
                         "application_name or none: %r" % (mode,))
