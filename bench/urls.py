"""The app's URLs plus a bare view that inserts one row: the baseline of the webhook benchmark."""

from __future__ import annotations

import json

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def bare_insert(request: HttpRequest) -> JsonResponse:
    # The least a webhook door can do: parse the body and store it.
    body = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_bare (payload) VALUES (%s)", [json.dumps(body)])
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("bench/bare/", bare_insert),
    path("", include("bitrixapp.urls")),
]
