"""Views of the appstore-like smoke project.

The tycho context is built at import time, at module level, exactly as appstore's API
views do; every call below is one appstore makes (see
shared/reference/appstore-usage.md). The user is taken from the ``X-Remote-User``
header and the tokens from ``Authorization: Bearer ...`` and ``X-Refresh-Token``
(appstore gets them from its session).
"""

import json
import logging

from django.conf import settings
from django.http import JsonResponse
from tycho.context import ContextFactory, Principal

logger = logging.getLogger(__name__)

contextFactory = ContextFactory()
if settings.TYCHO_CONFIG_URL:
    tycho = contextFactory.get(
        context_type=settings.TYCHO_MODE,
        product=settings.APPLICATION_BRAND,
        tycho_config_url=settings.TYCHO_CONFIG_URL,
    )
else:
    tycho = contextFactory.get(context_type=settings.TYCHO_MODE, product=settings.APPLICATION_BRAND)


def _user(request):
    return request.headers.get("X-Remote-User", "")


def _tokens(request):
    auth = request.headers.get("Authorization", "")
    access = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
    return access, request.headers.get("X-Refresh-Token")


def _amounts(values):
    """cpus / memory / gpus / ephemeralStorage of a compose limits or reservations entry."""
    gpus = values.get("gpus", 0)
    for device in values.get("devices") or []:
        gpus = device.get("count", gpus)
    return {
        "cpus": float(values.get("cpus", 0) or 0),
        "memory": values.get("memory"),
        "gpus": int(gpus or 0),
        "ephemeralStorage": values.get("ephemeralStorage"),
    }


def _describe(app_id, app):
    entry = {
        "app_id": app_id,
        "name": tycho.apps[app_id]["name"],
        "description": app.get("description"),
        "detail": app.get("details"),
        "docs": app.get("docs"),
        "spec": app.get("spec"),
        "count": app.get("count"),
        "lock_resources": app.get("lock-resources", False),
    }
    try:
        spec = tycho.get_definition(app_id)
        resources = spec["services"][app_id]["deploy"]["resources"]
        entry["minimum_resources"] = _amounts(resources.get("reservations") or {})
        entry["maximum_resources"] = _amounts(resources.get("limits") or {})
    except Exception as e:  # appstore logs the app and lists it without resources
        logger.error("could not read the definition of %s: %s", app_id, e)
    return entry


def app_list(request):
    return JsonResponse({app_id: _describe(app_id, app) for app_id, app in tycho.apps.items()})


def app_detail(request, app_id):
    app = tycho.apps.get(app_id)
    if app is None:
        return JsonResponse({"error": f"no app {app_id}"}, status=404)
    return JsonResponse(_describe(app_id, app))


def _row(service):
    return {
        "sid": service.identifier,
        "app_id": service.app_id,
        "creation_time": service.creation_time,
        "workspace_name": service.workspace_name,
        "is_ready": service.is_ready,
        "username": service.username,
        "cpus": service.total_util["cpu"],
        "gpus": service.total_util["gpu"],
        "memory": service.total_util["memory"],
        "ephemeralStorage": service.total_util["ephemeralStorage"],
    }


def _create(request):
    body = json.loads(request.body or b"{}")
    app_id = body.get("app_id")
    if app_id not in tycho.apps:
        return JsonResponse({"error": f"no app {app_id}"}, status=404)
    amounts = {
        "cpus": float(body.get("cpus", 1)),
        "memory": body.get("memory", "1G"),
        "gpus": int(body.get("gpus", 0)),
        "ephemeralStorage": body.get("ephemeralStorage", "1G"),
    }
    resources = {"deploy": {"resources": {"limits": dict(amounts), "reservations": dict(amounts)}}}
    access, refresh = _tokens(request)
    principal = Principal(_user(request), access, refresh)
    sid = None
    try:
        if "extra_container_env" in body:
            system = tycho.start(principal, app_id, resources, request.get_host(), body["extra_container_env"])
        else:
            system = tycho.start(principal, app_id, resources, request.get_host())
        sid = system.identifier
        service = system.services[0]
        return JsonResponse(
            {"sid": sid, "name": system.name, "ip_address": service.ip_address, "port": service.port,
             "service": service.identifier},
            status=201,
        )
    except Exception as e:
        logger.error("could not start %s: %s", app_id, e)
        if sid:
            tycho.delete({"name": sid})
        return JsonResponse({"error": str(e)}, status=500)


def instances(request):
    if request.method == "POST":
        return _create(request)
    status = tycho.status({"username": _user(request)})
    return JsonResponse([_row(s) for s in status.services], safe=False)


def instance(request, sid):
    if request.method == "PATCH":
        body = json.loads(request.body or b"{}")
        update = {"tycho-guid": sid, "labels": body.get("labels", {})}
        for key in ("cpu", "memory"):
            if key in body:
                update[key] = body[key]
        return JsonResponse(tycho.update(update), safe=False)
    status = tycho.status({"name": sid})
    if not status.services:
        return JsonResponse({"error": f"no instance {sid}"}, status=404)
    if request.method == "DELETE":
        if status.services[0].username != _user(request):
            return JsonResponse({"error": "not the owner of this instance"}, status=403)
        return JsonResponse(tycho.delete({"name": sid}) or {}, safe=False)
    return JsonResponse(_row(status.services[0]))
