"""Pods of a system made through the emulated API server, with the status a kubelet would
report (readiness tests: tests/context/test_readiness.py, tests/kube/test_executor_cache.py)."""

from __future__ import annotations

import json
import urllib.request


def _api(cluster, method, path, body, content_type="application/json"):
    req = urllib.request.Request(cluster.control.url + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def make_pod(cluster, guid, status, suffix="a"):
    """A pod of system ``guid`` with ``status`` (created through the API, as a kubelet would
    report), labelled as the Deployment's pod template labels tycho's pods."""
    name = f"pod-{guid[:8]}-{suffix}"
    ns = cluster.namespace
    cluster.fixtures.append(("Pod", name))
    _api(cluster, "POST", f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"tycho-guid": guid, "executor": "tycho"}},
        "spec": {"containers": [{"name": "jupyter-ds", "image": "jupyter/datascience-notebook:latest"}]},
    })
    _api(cluster, "PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status", {"status": status},
         content_type="application/merge-patch+json")
    return name


def waiting(reason, message=""):
    state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    return {"phase": "Pending", "containerStatuses": [
        {"name": "jupyter-ds", "image": "x", "imageID": "", "ready": False, "restartCount": 0, "state": state}]}


UNSCHEDULABLE = {"phase": "Pending", "conditions": [
    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
     "message": "0/3 nodes are available: 3 Insufficient cpu."}]}
