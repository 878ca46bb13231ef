"""The executor's watch cache (issues 12 and 24), against the emulated Kubernetes API server.

In a long-lived process (this one) the first operation starts watches of tycho's own
objects; once they have listed, status answers from memory (no API request), start reads
its facts from memory (two round trips: the Deployment, then the rest), a process reads its
own writes at once, and objects written elsewhere appear when the watch delivers them
(awaited here, never slept for). The fault tests cut the watch streams and compact the
emulator's history (410 Gone): the cache converges and status stays right. Through
quiet hours (watch cycles with no event) the cache lists nothing and stays fresh, and
it holds only what the executor reads of each object.
"""

import os
import subprocess
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
from cluster import Cluster, compute, start, start_request
from forking import run_in_child
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401 - fixtures
from tycho import _native
from tycho.core import Tycho
from tycho.exceptions import StartException

BOUND = 30.0  # seconds a watch may take to deliver on a busy machine


def wait_until(condition, what, bound=BOUND):
    """Awaits ``condition()`` (polled); fails naming ``what`` after ``bound`` seconds."""
    deadline = time.monotonic() + bound
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {bound} s: {what}")
        time.sleep(0.02)


@pytest.fixture(name="cluster")
def cached_cluster(kube_emulator, tmp_path, monkeypatch):  # noqa: F811 - the imported fixture
    if not getattr(kube_emulator, "is_emulator", False):
        pytest.skip("the cache tests count API requests: they need the emulator")
    for var in ("KUBERNETES_SERVICE_HOST", "AMBASSADOR_SVC_NAME", "REST_API", "TYCHO_KUBE_READ_TIMEOUT",
                "TYCHO_KUBE_CONNECT_TIMEOUT", "TYCHO_KUBE_TIMEOUT", "TYCHO_KUBE_WATCH_TIMEOUT", "DEV_PHASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("TYCHO_KUBE_CACHE", raising=False)
    path = kube_emulator.write_kubeconfig(tmp_path / "kubeconfig", namespace="default")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setenv("NAMESPACE", "default")
    c = Cluster(kube_emulator, str(path), "default")
    yield c
    c.cleanup()


def api_requests(cluster):
    """Requests other than watches (a watch is the cache's own, long-lived request)."""
    out = []
    for r in cluster.backend.requests():
        query = r.get("query") or ""
        if "watch=true" in query or "watch=1" in query:
            continue
        out.append(r)
    return out


def requests_of(cluster, fn):
    """(fn's result, the API requests made while it ran)."""
    cluster.backend.clear_requests()
    result = fn()
    return result, api_requests(cluster)


def status_is_warm(cluster, **kw):
    _, made = requests_of(cluster, lambda: compute().status(**kw))
    return not made


def uncached(monkeypatch, fn):
    """``fn()`` with the cache off (the API-server path, as without the cache)."""
    monkeypatch.setenv("TYCHO_KUBE_CACHE", "off")
    try:
        return fn()
    finally:
        monkeypatch.delenv("TYCHO_KUBE_CACHE")


def metric(name, kind):
    """The value of metric family ``name`` for ``kind`` in this process (0 when absent)."""
    import re

    import tycho

    m = re.search(rf'^{name}\{{kind="{kind}"\}} (\S+)$', tycho.metrics(), re.M)
    return float(m.group(1)) if m else 0.0


def warm(cluster):
    compute().status()
    wait_until(lambda: status_is_warm(cluster), "status answers from the watch cache")


def start_elsewhere(cluster, username):
    """Starts a system from another process (cache off there); returns its GUID."""
    code = (
        "import json, sys\n"
        "sys.path.insert(0, 'tests/support')\n"
        "from cluster import start_request\n"
        "from tycho.core import Tycho\n"
        "from tycho.config import Config\n"
        "from tycho.kube import KubernetesCompute\n"
        f"s = Tycho().parse(start_request(username={username!r}))\n"
        "KubernetesCompute(Config()).start(s)\n"
        "print(s.identifier)\n"
    )
    env = dict(os.environ, TYCHO_KUBE_CACHE="off", KUBECONFIG=cluster.kubeconfig)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                         timeout=120, check=True)
    guid = out.stdout.strip().splitlines()[-1]
    cluster.guids.append(guid)
    return guid


def control(cluster, method):
    """An emulator control the `emulator` branch adds; skip (with the reason) without it."""
    fn = getattr(cluster.backend, method, None)
    if fn is None:
        pytest.skip(f"the emulator has no {method}() (branch `emulator` not merged)")
    return fn


# ------------------------------------------------------------------ status from memory


def test_status_from_memory_makes_no_request_and_gives_the_same_rows(cluster, monkeypatch):
    a, _ = start(cluster, username="alice")
    b, _ = start(cluster, username="bob")
    warm(cluster)
    for kw in ({"name": a.identifier}, {"username": "bob"}, {}):
        wait_until(lambda kw=kw: status_is_warm(cluster, **kw), f"status({kw}) from memory")
        rows, made = requests_of(cluster, lambda kw=kw: compute().status(**kw))
        assert made == []
        assert rows == uncached(monkeypatch, lambda kw=kw: compute().status(**kw))
    assert {r["sid"] for r in compute().status()} >= {a.identifier, b.identifier}


def test_a_username_labelled_with_a_slug_is_listed_by_its_real_name_from_memory(cluster, monkeypatch):
    """docs/placement.md: the cache keeps the real-name annotation,
    so a warm status by an e-mail address gives the same rows as the API server."""
    email = "Jane.Doe@example.org"
    mine, _ = start(cluster, username=email)
    # A user whose real name is spelled like the slug: same label, not listed for email.
    theirs, _ = start(cluster, username=_native.username_label(email))
    warm(cluster)
    wait_until(lambda: status_is_warm(cluster, username=email), "status(e-mail) from memory")
    rows, made = requests_of(cluster, lambda: compute().status(username=email))
    assert made == []
    assert [(r["sid"], r["username"]) for r in rows] == [(mine.identifier, email)]
    assert rows == uncached(monkeypatch, lambda: compute().status(username=email))
    others = compute().status(username=_native.username_label(email))
    assert [r["sid"] for r in others] == [theirs.identifier]


def test_cache_off_reads_the_api_server(cluster, monkeypatch):
    start(cluster)
    warm(cluster)
    monkeypatch.setenv("TYCHO_KUBE_CACHE", "off")
    _, made = requests_of(cluster, lambda: compute().status())
    assert [r["method"] for r in made] == ["GET", "GET"]


# ------------------------------------------------------------------ read your own writes


def test_a_process_reads_its_own_writes(cluster):
    warm(cluster)
    delay = getattr(cluster.backend, "watch_delay", None)
    if delay is not None:
        delay(5000)  # the watch is slower than the reads below: they see the writes all the same
    try:
        system, _ = start(cluster, username="self")
        rows = compute().status(name=system.identifier)
        assert [r["sid"] for r in rows] == [system.identifier]
        assert [r["sid"] for r in compute().status(username="self")] == [system.identifier]
        compute().delete(system.identifier)
        assert compute().status(name=system.identifier) == []
        assert compute().status(username="self") == []
    finally:
        if delay is not None:
            delay(0)


def test_a_process_reads_its_own_modify(cluster):
    warm(cluster)
    system, _ = start(cluster, username="self")
    delay = control(cluster, "watch_delay")
    delay(5000)  # the patch's watch event comes late: status shows the patch all the same
    try:
        compute().modify(Tycho().parse_modify({"tycho-guid": system.identifier, "cpu": "3",
                                                "memory": "3G"}))
        _, made = requests_of(cluster, lambda: compute().status(name=system.identifier))
        (row,) = compute().status(name=system.identifier)
        assert made == []
        assert {u["cpu"] for u in row["utilization"].values()} == {"3"}, row
    finally:
        delay(0)


def test_readiness_reads_the_deployment_and_pods_from_memory(cluster):
    """Warm, a readiness look (what aprogress and wait repeat) lists no Deployment and no
    pod: only the pod's Warning events are asked for."""
    from pods import UNSCHEDULABLE, make_pod
    from tycho.context import TychoContext

    warm(cluster)
    system, _ = start(cluster)
    make_pod(cluster, system.identifier, UNSCHEDULABLE)
    ctx = TychoContext(product="common", stub=False)
    wanted = "Unschedulable: 0/3 nodes are available: 3 Insufficient cpu."
    wait_until(lambda: ctx.readiness(system.identifier)["reason"] == wanted, "the pod reaches the cache")
    event, made = requests_of(cluster, lambda: ctx.readiness(system.identifier))
    assert event["reason"] == wanted and event["ready"] is False
    assert made and all(r["path"].endswith("/events") for r in made), made


def test_objects_of_other_processes_appear_when_the_watch_delivers(cluster):
    warm(cluster)
    guid = start_elsewhere(cluster, "elsewhere")
    rows = wait_until(lambda: compute().status(name=guid), "the other process's system")
    assert [r["sid"] for r in rows] == [guid]
    compute().delete(guid)
    assert compute().status(name=guid) == []


# ------------------------------------------------------------------ start's round trips


def warm_start(cluster):
    """Starts until a start reads nothing (the named watches of its facts have listed)."""
    secrets_cached = os.environ.get("TYCHO_KUBE_CACHE_SECRETS") != "off"

    def reads_nothing():
        _, made = requests_of(cluster, lambda: start(cluster))
        return not [r for r in made if r["method"] == "GET"
                    and (secrets_cached or "/secrets/" not in r["path"])]
    start(cluster)
    wait_until(reads_nothing, "start reads its facts from the watch cache")


def test_warm_start_writes_only(cluster):
    warm(cluster)
    warm_start(cluster)
    (system, result), made = requests_of(cluster, lambda: start(cluster))
    assert [r["method"] for r in made] == ["POST"] * len(made)
    paths = [r["path"] for r in made]
    assert paths[0].endswith("/deployments")  # round 1: the Deployment, alone
    assert sum(p.endswith("/services") for p in paths) == 1
    assert sum(p.endswith("/networkpolicies") for p in paths) <= 1
    assert result["sid"] == system.identifier
    assert [r["sid"] for r in compute().status(name=system.identifier)] == [system.identifier]


def test_the_env_secret_is_watched_by_name_as_a_streaming_list(cluster):
    """deploy/role.yaml grants secrets `watch`, not `list`: the cache's Secret watch
    must be one watch request with sendInitialEvents, selected by name."""
    warm(cluster)
    cluster.backend.clear_requests()
    app = "secret-probe"  # an app no other test starts: its Secret's watch begins here

    def reads_no_secret():  # the request log keeps growing: this test reads all of it
        before = len(cluster.backend.requests())
        start(cluster, name=app)
        made = cluster.backend.requests()[before:]
        return not [r for r in made if "/secrets/" in r["path"] and r["method"] == "GET"]
    wait_until(reads_no_secret, "start reads its Secret from the watch cache")
    secret_requests = [r for r in cluster.backend.requests()
                       if r["path"].endswith("/secrets") and r["method"] == "GET"]
    watches = [r for r in secret_requests if "watch=true" in (r.get("query") or "")]
    assert watches, secret_requests
    for r in watches:
        query = urllib.parse.parse_qs(r["query"])
        assert query["fieldSelector"] == [f"metadata.name={app}-env"], r
    assert urllib.parse.parse_qs(watches[0]["query"])["sendInitialEvents"] == ["true"], watches[0]
    assert not [r for r in secret_requests if r not in watches], "a list of Secrets was made"


def test_warm_start_reads_the_env_secret_without_secret_watches(cluster, monkeypatch):
    monkeypatch.setenv("TYCHO_KUBE_CACHE_SECRETS", "off")
    warm(cluster)
    warm_start(cluster)
    _, made = requests_of(cluster, lambda: start(cluster))
    gets = [r["path"] for r in made if r["method"] == "GET"]
    assert len(gets) == 1 and gets[0].endswith("/secrets/jupyter-ds-env")


def test_warm_start_sees_an_ambassador_created_elsewhere(cluster):
    warm(cluster)
    warm_start(cluster)
    cluster.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ambassador"},
                    "spec": {"ports": [{"port": 80}]}})

    def mapped():
        system = Tycho().parse(start_request())
        cluster.guids.append(system.identifier)
        compute().start(system)
        svc = cluster.named("Service", f"jupyter-ds-{system.identifier}")
        return svc and "getambassador.io/config" in (svc["metadata"].get("annotations") or {})
    wait_until(mapped, "start sees the Ambassador Service")


def test_failed_start_leaves_nothing_in_the_cache(cluster):
    warm(cluster)
    warm_start(cluster)
    cluster.backend.faults("POST", r"/services$", status=422, reason="Invalid", message="no")
    system = Tycho().parse(start_request(username="fails"))
    cluster.guids.append(system.identifier)
    with pytest.raises(StartException):
        compute().start(system)
    assert compute().status(name=system.identifier) == []


# ------------------------------------------------------------------ fork


def test_a_forked_child_makes_its_own_cache(cluster):
    system, _ = start(cluster)
    warm(cluster)

    def child():
        compute().status()
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            if status_is_warm(cluster, name=system.identifier):
                return [r["sid"] for r in compute().status(name=system.identifier)]
            time.sleep(0.02)
        return "never warm"

    assert run_in_child(child) == [system.identifier]
    assert status_is_warm(cluster, name=system.identifier)


# ------------------------------------------------------------------ recovery


def test_cut_watch_streams_converge(cluster):
    cut = control(cluster, "cut_watches")
    warm(cluster)
    mine, _ = start(cluster, username="cut")
    cut()
    other = start_elsewhere(cluster, "cut")
    wait_until(lambda: {r["sid"] for r in compute().status(username="cut")} == {mine.identifier, other},
               "status after the watch streams were cut")
    wait_until(lambda: status_is_warm(cluster, username="cut"), "the cache recovers")


def test_gone_resource_version_relists(cluster, monkeypatch):
    compact = control(cluster, "compact")
    cut = control(cluster, "cut_watches")
    warm(cluster)
    gone, _ = start(cluster, username="relist")
    monkeypatch.setenv("TYCHO_KUBE_CACHE", "off")
    compute().delete(gone.identifier)  # not seen by this process's cache as its own write
    monkeypatch.delenv("TYCHO_KUBE_CACHE")
    restarts = metric("tycho_watch_restarts_total", "deployments")
    cluster.backend.clear_requests()
    compact()
    cut()  # the watches resume from a compacted resourceVersion: 410 Gone, then a relist
    # The 410 restarts the watch (tycho.metrics()) and the cache lists again.
    wait_until(lambda: metric("tycho_watch_restarts_total", "deployments") > restarts, "the 410 restarts the watch")
    wait_until(lambda: [r for r in cluster.backend.requests() if r["path"].endswith("/deployments")
                        and "limit=500" in r["query"]], "the cache lists the Deployments again")
    wait_until(lambda: compute().status(username="relist") == [], "the relisted cache")
    wait_until(lambda: status_is_warm(cluster, username="relist"), "the cache recovers")
    wait_until(lambda: metric("tycho_cache_synced", "deployments") == 1, "the synced gauge")
    assert uncached(monkeypatch, lambda: compute().status()) == compute().status()



def test_a_cache_of_more_than_a_page_keeps_every_object(cluster, monkeypatch):
    """kube-rs lists in pages of 500 (limit + continue, as the API server answers): a
    process whose cache starts among 1,100 Deployments must hold all of them."""
    import exec_oracle

    exec_oracle.populate(cluster.backend.url, cluster.namespace, 1100, services=False, workers=8)
    want = uncached(monkeypatch, lambda: len(compute().status()))
    assert want >= 1100
    cluster.backend.clear_requests()
    code = (
        "import time, tycho\n"
        "from tycho.config import Config\n"
        "from tycho.kube import KubernetesCompute\n"
        "c = KubernetesCompute(Config())\n"
        "c.status()\n"
        "deadline = time.monotonic() + 60\n"
        "synced = 'tycho_cache_synced{kind=\"deployments\"} 1'\n"
        "while synced not in tycho.metrics() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print(len(c.status()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split()[-1] == str(want), out.stderr[-2000:]
    pages = [r["query"] for r in cluster.backend.requests()
             if r["method"] == "GET" and r["path"].endswith("/deployments")
             and "watch=true" not in r["query"] and "continue=" in r["query"]]
    assert pages, [r["query"] for r in cluster.backend.requests() if r["path"].endswith("/deployments")]


# ------------------------------------------------------------------ quiet hours (issue 24)

COLLECTIONS = ("deployments", "services", "pods", "networkpolicies", "secrets", "persistentvolumeclaims")


def watches_of(made, plural):
    """The watch requests of the cache's reflector of tycho's own ``plural`` (labelled
    executor=tycho; not those of single names) in the request log ``made``."""
    return [r for r in made if r["method"] == "GET" and r["path"].endswith("/" + plural)
            and "watch=true" in (r.get("query") or "") and "labelSelector=executor" in r["query"]]


def lists_in(made):
    """The list requests (a GET of a collection that is not a watch) in ``made``."""
    return [r for r in made if r["method"] == "GET" and r["path"].rsplit("/", 1)[-1] in COLLECTIONS
            and "watch=true" not in (r.get("query") or "")]


def relists_in(made):
    """The cache's own lists in ``made`` (it lists in pages: ``limit=500``; status's
    lists, when the cache is not fresh, have no limit)."""
    return [r for r in lists_in(made) if "limit=500" in (r.get("query") or "")]


def status_warm_logged(cluster, **kw):
    """Whether status answers from memory, without clearing the request log."""
    before = len(cluster.backend.requests())
    compute().status(**kw)
    return len(cluster.backend.requests()) == before


def test_quiet_hours_keep_the_cache_fresh_without_a_list(cluster, monkeypatch):
    """Watches of 2 s (TYCHO_KUBE_WATCH_TIMEOUT) beside a read timeout of 1 s, shorter
    than a watch with no event: through four watch cycles with no event (the emulator's
    bookmarks come every 5 s) status answers from memory and right, nothing is listed,
    no watch fails, and each watch resumes from the resourceVersion the one before had.
    Then a system started by another process shows, still without a list."""
    monkeypatch.setenv("TYCHO_KUBE_WATCH_TIMEOUT", "2")
    monkeypatch.setenv("TYCHO_KUBE_READ_TIMEOUT", "1")
    a, _ = start(cluster, username="quiet")
    b, _ = start(cluster, username="quiet")
    want = uncached(monkeypatch, lambda: compute().status(username="quiet"))
    assert {r["sid"] for r in want} == {a.identifier, b.identifier}
    wait_until(lambda: status_is_warm(cluster, username="quiet"), "status answers from the watch cache")
    failed = metric("tycho_watch_restarts_total", "deployments") + metric("tycho_watch_restarts_total", "services")
    cluster.backend.clear_requests()

    def cycled():
        assert compute().status(username="quiet") == want
        made = cluster.backend.requests()
        return all(len(watches_of(made, kind)) >= 4 for kind in ("deployments", "services"))

    wait_until(cycled, "four watches each of Deployments and Services")
    made = cluster.backend.requests()
    assert lists_in(made) == []
    for kind in ("deployments", "services"):
        versions = []
        for w in watches_of(made, kind):
            query = urllib.parse.parse_qs(w["query"])
            assert query["timeoutSeconds"] == ["2"], w
            assert query["allowWatchBookmarks"] == ["true"], w
            versions.append(int(query["resourceVersion"][0]))
        assert versions[0] > 0 and versions == sorted(versions), versions
    assert metric("tycho_watch_restarts_total", "deployments") + metric(
        "tycho_watch_restarts_total", "services") == failed, "a watch failed"

    other = start_elsewhere(cluster, "quiet")
    rows = wait_until(lambda: [r for r in compute().status(username="quiet") if r["sid"] == other],
                      "the other process's system")
    assert rows[0]["username"] == "quiet"
    assert lists_in(cluster.backend.requests()) == []
    assert compute().status(username="quiet") == uncached(
        monkeypatch, lambda: compute().status(username="quiet"))


def test_a_failed_watch_resumes_without_a_list(cluster, monkeypatch):
    """A watch request that fails (a 500) makes the cache stale; the next watch, from the
    same resourceVersion, makes it fresh again as soon as the API server accepts it, on a
    quiet cluster too: the cache never lists again."""
    monkeypatch.setenv("TYCHO_KUBE_WATCH_TIMEOUT", "2")
    system, _ = start(cluster, username="resume")
    wait_until(lambda: status_is_warm(cluster, username="resume"), "status answers from the watch cache")
    failed = metric("tycho_watch_restarts_total", "deployments")
    cluster.backend.clear_requests()
    # The next GET of the Deployments collection is the watch that follows this one.
    cluster.backend.faults("GET", r"/deployments$", status=500, times=1)
    wait_until(lambda: metric("tycho_watch_restarts_total", "deployments") > failed, "the watch fails")
    wait_until(lambda: status_warm_logged(cluster, username="resume"), "the cache is fresh again")
    assert [r["sid"] for r in compute().status(username="resume")] == [system.identifier]
    made = cluster.backend.requests()
    assert relists_in(made) == []
    resumed = [urllib.parse.parse_qs(w["query"])["resourceVersion"][0] for w in watches_of(made, "deployments")]
    assert len(resumed) >= 2 and len(set(resumed)) == 1, resumed
    assert metric("tycho_cache_synced", "deployments") == 1


def test_large_annotations_do_not_grow_the_cache(cluster):
    """300 Deployments with 50 KB of annotations each (and as much in their pod
    templates): a process's cache holds at most 2 KiB a Deployment (its gauges
    tycho_cache_bytes and tycho_cache_objects; the Rust test
    large_annotations_do_not_grow_what_an_object_costs measures the same with the
    allocator)."""
    import exec_oracle

    n, blob = 300, "x" * 50_000

    def one(i):
        d = exec_oracle.deployment_for(i, exec_oracle.bench_user(i), cluster.namespace)
        d["metadata"]["annotations"] = {"example.org/blob": blob}
        d["spec"]["template"]["metadata"]["annotations"] = {"example.org/blob": blob}
        exec_oracle.post(cluster.backend.url, "Deployment", cluster.namespace, d)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))
    code = rf"""
import re, time, tycho
from tycho.config import Config
from tycho.kube import KubernetesCompute

def gauge(name):
    m = re.search(name + r'\{{kind="deployments"\}} (\S+)', tycho.metrics())
    return float(m.group(1)) if m else 0.0

c = KubernetesCompute(Config())
c.status()
deadline = time.monotonic() + 60
while gauge("tycho_cache_objects") < {n} and time.monotonic() < deadline:
    time.sleep(0.05)
print(len(c.status()), gauge("tycho_cache_objects"), gauge("tycho_cache_bytes"))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    rows, objects, held = out.stdout.split()[-3:]
    assert int(rows) == n and float(objects) == n, out.stdout + out.stderr[-2000:]
    assert 0 < float(held) / n <= 2048, f"{float(held) / n:.0f} bytes a Deployment"
