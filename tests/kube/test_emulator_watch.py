"""Watches on the kube emulator, through the Python driver's watch methods
(``watch_delay``, ``cut_watches``, ``compact``, ``open_watches``) and plain
HTTP streams read line by line, as a Kubernetes client reads them."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse

import pytest

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
SECRETS = "/api/v1/namespaces/default/secrets"


def _request(emu, method: str, path: str, body=None, content_type: str = "application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
    try:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def _secret(name: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": labels or {}}, "data": {}}


class Watch:
    """One watch stream: events read one line at a time."""

    def __init__(self, emu, path: str, **params):
        params = {"watch": "true", **{k: str(v) for k, v in params.items()}}
        self.conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
        self.conn.request("GET", path + "?" + urllib.parse.urlencode(params))
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()

    def next(self) -> dict | None:
        line = self.resp.readline()
        return json.loads(line) if line else None

    def until(self, pred) -> list[dict]:
        """Events up to and including the first one ``pred`` accepts."""
        seen = []
        while True:
            ev = self.next()
            assert ev is not None, f"stream ended before the event; saw {seen}"
            seen.append(ev)
            if pred(ev):
                return seen

    def close(self) -> None:
        self.conn.close()


def _wait_for(cond, what: str, timeout: float = 30.0):
    """Wait for a condition (a bound, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _name(ev: dict) -> str:
    return ev["object"]["metadata"]["name"]


@pytest.fixture
def emu(kube_emulator):
    if not kube_emulator.is_emulator:
        pytest.skip("watch control needs the kube emulator (TYCHO_TEST_KUBECONFIG is a real cluster)")
    return kube_emulator


def test_resume_from_list_version_has_no_gap(emu):
    _request(emu, "POST", SECRETS, _secret("before"))
    status, listed = _request(emu, "GET", SECRETS)
    assert status == 200
    rv = listed["metadata"]["resourceVersion"]
    # Written after the list and before the watch opens: still delivered.
    for n in ("a", "b", "c"):
        assert _request(emu, "POST", SECRETS, _secret(n))[0] == 201
    w = Watch(emu, SECRETS, resourceVersion=rv)
    try:
        events = w.until(lambda ev: _name(ev) == "c")
        assert [(e["type"], _name(e)) for e in events] == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]
    finally:
        w.close()


def test_delete_event_carries_a_new_resource_version(emu):
    _, created = _request(emu, "POST", SECRETS, _secret("gone"))
    created_rv = int(created["metadata"]["resourceVersion"])
    w = Watch(emu, SECRETS, resourceVersion=created_rv)
    try:
        _request(emu, "DELETE", SECRETS + "/gone")
        ev = w.until(lambda ev: ev["type"] == "DELETED")[-1]
        assert int(ev["object"]["metadata"]["resourceVersion"]) > created_rv
        _, listed = _request(emu, "GET", SECRETS)
        assert int(listed["metadata"]["resourceVersion"]) >= int(ev["object"]["metadata"]["resourceVersion"])
    finally:
        w.close()


def test_label_selector_entry_and_exit(emu):
    _, listed = _request(emu, "GET", SECRETS)
    w = Watch(emu, SECRETS, resourceVersion=listed["metadata"]["resourceVersion"], labelSelector="executor=tycho")
    try:
        _request(emu, "POST", SECRETS, _secret("s", {"executor": "other"}))
        patch = {"metadata": {"labels": {"executor": "tycho"}}}
        _request(emu, "PATCH", SECRETS + "/s", patch, "application/merge-patch+json")
        _request(emu, "PATCH", SECRETS + "/s", {"metadata": {"labels": {"executor": "other"}}},
                 "application/merge-patch+json")
        events = w.until(lambda ev: ev["type"] == "DELETED")
        assert [e["type"] for e in events] == ["ADDED", "DELETED"]
        # DELETED: the previous state (still selected), with the new version.
        assert events[1]["object"]["metadata"]["labels"] == {"executor": "tycho"}
        assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(
            events[0]["object"]["metadata"]["resourceVersion"])
    finally:
        w.close()


def test_streaming_list_ends_with_initial_events_bookmark(emu):
    for n in ("x", "y"):
        _request(emu, "POST", SECRETS, _secret(n))
    w = Watch(emu, SECRETS, sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
              allowWatchBookmarks="true")
    try:
        events = w.until(lambda ev: ev["type"] == "BOOKMARK")
        assert [(e["type"], _name(e)) for e in events[:-1]] == [("ADDED", "x"), ("ADDED", "y")]
        bookmark = events[-1]["object"]
        assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        assert int(bookmark["metadata"]["resourceVersion"]) >= max(
            int(e["object"]["metadata"]["resourceVersion"]) for e in events[:-1])
    finally:
        w.close()
    status, body = _request(emu, "GET", SECRETS + "?watch=true&sendInitialEvents=true")
    assert status == 422 and body["reason"] == "Invalid"


def test_compact_answers_410_on_watch(emu):
    _, created = _request(emu, "POST", SECRETS, _secret("old"))
    old_rv = created["metadata"]["resourceVersion"]
    _request(emu, "POST", SECRETS, _secret("new"))
    emu.compact()
    w = Watch(emu, SECRETS, resourceVersion=old_rv)
    try:
        ev = w.next()
        assert ev["type"] == "ERROR"
        assert ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"
        assert w.next() is None
    finally:
        w.close()
    # The current version is not stale.
    _, listed = _request(emu, "GET", SECRETS)
    w = Watch(emu, SECRETS, resourceVersion=listed["metadata"]["resourceVersion"])
    try:
        _request(emu, "POST", SECRETS, _secret("after"))
        assert _name(w.until(lambda ev: ev["type"] == "ADDED")[-1]) == "after"
    finally:
        w.close()


def test_open_watches_counts_and_closed_streams_are_noticed(emu):
    assert emu.open_watches() == 0
    watches = [Watch(emu, SECRETS) for _ in range(25)]
    _wait_for(lambda: emu.open_watches() == 25, "25 open watches")
    for w in watches:
        w.close()
    _wait_for(lambda: emu.open_watches() == 0, "the closed watches to be noticed")


def test_cut_watches_ends_every_stream(emu):
    _, listed = _request(emu, "GET", SECRETS)
    watches = [Watch(emu, SECRETS, resourceVersion=listed["metadata"]["resourceVersion"]) for _ in range(3)]
    try:
        _wait_for(lambda: emu.open_watches() == 3, "3 open watches")
        assert emu.cut_watches() == 3
        for w in watches:
            assert w.next() is None  # the stream ended
        _wait_for(lambda: emu.open_watches() == 0, "no open watch")
        # Resuming from the version seen misses nothing.
        _request(emu, "POST", SECRETS, _secret("later"))
        w = Watch(emu, SECRETS, resourceVersion=listed["metadata"]["resourceVersion"])
        try:
            assert _name(w.next()) == "later"
        finally:
            w.close()
    finally:
        for w in watches:
            w.close()


def test_watch_delay_keeps_reads_immediate_and_events_complete(emu):
    emu.watch_delay(300)
    _, listed = _request(emu, "GET", SECRETS)
    w = Watch(emu, SECRETS, resourceVersion=listed["metadata"]["resourceVersion"])
    try:
        _request(emu, "POST", SECRETS, _secret("delayed"))
        # The write is readable at once; its event comes (later).
        _, now = _request(emu, "GET", SECRETS)
        assert [o["metadata"]["name"] for o in now["items"]] == ["delayed"]
        assert _name(w.until(lambda ev: ev["type"] == "ADDED")[-1]) == "delayed"
    finally:
        w.close()
    assert _request(emu, "GET", "/__emulator/watch-delay")[1] == {"ms": 300}
    emu.reset()
    assert _request(emu, "GET", "/__emulator/watch-delay")[1] == {"ms": 0}


def test_reset_deletes_for_open_watches(emu):
    _request(emu, "POST", SECRETS, _secret("kept"))
    _, listed = _request(emu, "GET", SECRETS)
    w = Watch(emu, SECRETS, resourceVersion=listed["metadata"]["resourceVersion"])
    try:
        emu.reset(store_only=True)
        ev = w.until(lambda ev: ev["type"] == "DELETED")[-1]
        assert _name(ev) == "kept"
    finally:
        w.close()


def test_deployment_delete_cascades_as_events(emu):
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "labels": {"executor": "tycho"}},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    assert _request(emu, "POST", DEPLOYMENTS, dep)[0] == 201
    emu.set_deployment_status("default", "web", pods=True)
    _, pods = _request(emu, "GET", "/api/v1/namespaces/default/pods")
    assert len(pods["items"]) == 1
    w = Watch(emu, "/api/v1/namespaces/default/pods", resourceVersion=pods["metadata"]["resourceVersion"])
    try:
        _request(emu, "DELETE", DEPLOYMENTS + "/web")
        ev = w.until(lambda ev: ev["type"] == "DELETED")[-1]
        assert ev["object"]["metadata"]["name"] == pods["items"][0]["metadata"]["name"]
    finally:
        w.close()


def test_list_with_expired_exact_version_is_410(emu):
    _, created = _request(emu, "POST", SECRETS, _secret("v"))
    _request(emu, "POST", SECRETS, _secret("w"))
    emu.compact()
    rv = created["metadata"]["resourceVersion"]
    status, body = _request(emu, "GET", f"{SECRETS}?resourceVersion={rv}&resourceVersionMatch=Exact")
    assert status == 410 and body["reason"] == "Expired"


def test_lists_page_with_limit_and_continue(emu):
    """``limit`` gives a page, a ``continue`` token and ``remainingItemCount``; the token
    gives the rest, under the first page's resourceVersion; a bad token is a 400."""
    for i in range(7):
        status, _ = _request(emu, "POST", SECRETS, _secret(f"page-{i}", {"pages": "yes"}))
        assert status == 201
    query = "?" + urllib.parse.urlencode({"labelSelector": "pages=yes", "limit": 3})
    status, first = _request(emu, "GET", SECRETS + query)
    assert status == 200 and [o["metadata"]["name"] for o in first["items"]] == ["page-0", "page-1", "page-2"]
    assert first["metadata"]["remainingItemCount"] == 4
    names, page = [], first
    while page["metadata"].get("continue"):
        q = urllib.parse.urlencode({"labelSelector": "pages=yes", "limit": 3, "continue": page["metadata"]["continue"]})
        status, page = _request(emu, "GET", SECRETS + "?" + q)
        assert status == 200, page
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        names += [o["metadata"]["name"] for o in page["items"]]
    assert names == [f"page-{i}" for i in range(3, 7)]
    assert "remainingItemCount" not in page["metadata"]
    status, bad = _request(emu, "GET", SECRETS + "?continue=not-a-token")
    assert status == 400 and bad["reason"] == "BadRequest", bad
    status, whole = _request(emu, "GET", SECRETS + "?labelSelector=pages%3Dyes")
    assert len(whole["items"]) == 7 and "continue" not in whole["metadata"]
