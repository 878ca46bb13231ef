"""The cluster under test for the Kubernetes executor tests: the kube emulator (the
``kube_emulator`` fixture of kube_emulator.py), or a real cluster through kubectl when
``TYCHO_TEST_KUBECONFIG`` is set (namespace ``TYCHO_TEST_NAMESPACE`` or ``default``).

* ``Cluster``: reads objects back, creates fixtures, cleans up after the test;
* ``cluster_fixture``: the ``cluster`` fixture (import it into the test module, with the
  ``kube_emulator`` fixtures it needs: ``from cluster import cluster_fixture``);
* ``start_request``/``compute``/``start``: a Jupyter-like start request, the executor,
  and a parse-and-start that registers the system for cleanup.
"""

import json
import os
import shutil
import subprocess
import urllib.request

import pytest
from tycho.config import Config
from tycho.core import Tycho
from tycho.exceptions import TychoException
from tycho.kube import KubernetesCompute

COLLECTIONS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets",
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "Service": "/api/v1/namespaces/{ns}/services",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
}
KUBECTL_KINDS = "deployments,replicasets,pods,services,networkpolicies,persistentvolumeclaims,secrets"


class Cluster:
    """The cluster under test: the emulator, or a real cluster through kubectl."""

    def __init__(self, backend, kubeconfig, namespace):
        self.backend = backend
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.is_emulator = getattr(backend, "is_emulator", False)
        self.fixtures = []  # (kind, name) created by the test
        self.guids = []  # systems started by the test

    @property
    def control(self):
        """The emulator's control API (skips the test on a real cluster)."""
        if not self.is_emulator:
            pytest.skip("needs the kube emulator's control API (TYCHO_TEST_KUBECONFIG points at a real cluster)")
        return self.backend

    def _kubectl(self, *args, stdin=None):
        exe = shutil.which("kubectl")
        if exe is None:
            pytest.skip("reading a real cluster needs kubectl")
        out = subprocess.run([exe, "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args],
                             input=stdin, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
        return out.stdout

    def objects(self, guid):
        """Every object labelled tycho-guid=<guid> in the namespace."""
        if self.is_emulator:
            return [
                o for o in self.backend.objects()
                if o["metadata"].get("namespace") == self.namespace
                and (o["metadata"].get("labels") or {}).get("tycho-guid") == guid
            ]
        items = json.loads(self._kubectl("get", KUBECTL_KINDS, "-l", f"tycho-guid={guid}", "-o", "json"))["items"]
        return items

    def named(self, kind, name):
        """The object of ``kind`` named ``name``, or None."""
        if self.is_emulator:
            for o in self.backend.objects():
                if (o.get("kind") == kind and o["metadata"]["name"] == name
                        and o["metadata"].get("namespace") == self.namespace):
                    return o
            return None
        try:
            return json.loads(self._kubectl("get", kind.lower(), name, "-o", "json"))
        except AssertionError:
            return None

    def of_kind(self, guid, kind):
        return [o for o in self.objects(guid) if o.get("kind") == kind]

    def create(self, obj):
        """Create a fixture object (removed after the test)."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        self.fixtures.append((kind, name))
        if self.is_emulator:
            path = COLLECTIONS[kind].format(ns=self.namespace)
            req = urllib.request.Request(self.backend.url + path, data=json.dumps(obj).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        return json.loads(self._kubectl("create", "--validate=false", "-f", "-", "-o", "json", stdin=json.dumps(obj)))

    def cleanup(self):
        compute = KubernetesCompute(Config())
        for guid in self.guids:
            try:
                compute.delete(guid)
            except TychoException:
                pass
        for kind, name in self.fixtures:
            if self.is_emulator:
                path = COLLECTIONS[kind].format(ns=self.namespace) + "/" + name
                try:
                    urllib.request.urlopen(urllib.request.Request(self.backend.url + path, method="DELETE"),
                                           timeout=10).read()
                except OSError:
                    pass
            else:
                subprocess.run([shutil.which("kubectl") or "kubectl", "--kubeconfig", self.kubeconfig, "-n",
                                self.namespace, "delete", kind.lower(), name, "--ignore-not-found"],
                               capture_output=True, timeout=60)


@pytest.fixture(name="cluster")
def cluster_fixture(kube_emulator, tmp_path, monkeypatch):
    for var in ("KUBERNETES_SERVICE_HOST", "AMBASSADOR_SVC_NAME", "REST_API", "TYCHO_KUBE_READ_TIMEOUT",
                "TYCHO_KUBE_CONNECT_TIMEOUT", "TYCHO_KUBE_TIMEOUT", "TYCHO_KUBE_WATCH_TIMEOUT", "DEV_PHASE"):
        monkeypatch.delenv(var, raising=False)
    namespace = os.environ.get("TYCHO_TEST_NAMESPACE") or "default"
    path = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig", namespace=namespace)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("NAMESPACE", namespace)
    # These tests change the cluster behind the executor's back (fixtures, deployment
    # status) and read at once: they exercise the API-server path. The watch cache has
    # its own tests (test_executor_cache.py), which await what a watch delivers.
    monkeypatch.setenv("TYCHO_KUBE_CACHE", "off")
    c = Cluster(kube_emulator, str(path), namespace)
    yield c
    c.cleanup()


COMPOSE = {
    "version": "3.0",
    "services": {
        "jupyter-ds": {
            "image": "jupyter/datascience-notebook:latest",
            "entrypoint": "start.sh jupyter lab",
            "ports": ["8888"],
            "environment": ["FROM_COMPOSE=compose-value"],
            "deploy": {"resources": {"limits": {"cpus": "0.5", "memory": "1G"}}},
        },
        "sidecar": {"image": "busybox:1.36", "entrypoint": "sleep infinity"},
    },
}


def start_request(name="jupyter-ds", username="jdoe", clients=(), volumes=None, compose=None):
    compose = json.loads(json.dumps(compose or COMPOSE))
    if volumes:
        compose["services"]["jupyter-ds"]["volumes"] = list(volumes)
    return {
        "name": name,
        "principal": json.dumps({"username": username, "access_token": "secret-token-A", "host": "h.example.org"}),
        "serviceaccount": "default",
        "env": {},
        "system": compose,
        "services": {"jupyter-ds": {"port": "8888", "clients": list(clients)}},
    }


def compute():
    return KubernetesCompute(Config())


def start(cluster, **kw):
    """Parse and start a request; returns (system, result)."""
    system = Tycho().parse(start_request(**kw))
    cluster.guids.append(system.identifier)
    return system, compute().start(system)
