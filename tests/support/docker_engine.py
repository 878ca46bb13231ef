"""The Docker Engine for tests/dockerc/test_docker.py, reached directly over its Unix socket
(independently of the backplane under test): a tiny HTTP client, the test image
(tests/docker-image/httpd.rs compiled static and imported `FROM scratch`, once per
session), a fault-injecting proxy socket, and clean-up of everything a test labelled.

``python tests/support/docker_engine.py seed-leftovers`` (run by .ci/run before the
tests) leaves on the Engine what an earlier run leaves behind, so the tests always meet a
used machine.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
from pathlib import Path

# This module lives in tests/support/; the image source is in tests/docker-image/.
TESTS = Path(__file__).resolve().parents[1]
HTTPD_SOURCE = TESTS / "docker-image" / "httpd.rs"
IMAGE_REPO = "tycho-test-httpd"


def socket_path():
    """The Engine's socket: DOCKER_HOST (unix://) else /var/run/docker.sock."""
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return "/var/run/docker.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Engine:
    """Engine API calls for assertions and fixtures."""

    def __init__(self, path=None):
        self.path = path or socket_path()

    def request(self, method, path, body=None, headers=None, timeout=120):
        conn = _UnixConnection(self.path, timeout=timeout)
        try:
            data = body
            hdrs = dict(headers or {})
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=hdrs)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            value = raw.decode(errors="replace")
        return response.status, value

    def reachable(self):
        try:
            status, _ = self.request("GET", "/_ping", timeout=5)
            return status == 200
        except OSError:
            return False

    def _list(self, kind, label):
        """Objects of ``kind`` with ``label`` (``key=value``; a list: all of them)."""
        labels = [label] if isinstance(label, str) else list(label)
        filters = urllib.parse.quote(json.dumps({"label": labels}))
        extra = "&all=1" if kind == "containers" else ""
        status, value = self.request("GET", f"/{kind}/json?filters={filters}{extra}" if kind == "containers"
                                     else f"/{kind}?filters={filters}")
        assert status == 200, value
        if kind == "volumes":
            return value.get("Volumes") or []
        return value or []

    def containers(self, label):
        return self._list("containers", label)

    def networks(self, label):
        return self._list("networks", label)

    def volumes(self, label):
        return self._list("volumes", label)

    def inspect(self, container):
        status, value = self.request("GET", f"/containers/{container}/json")
        assert status == 200, value
        return value

    def volume(self, name):
        """The volume ``name`` as inspected, or None when there is none."""
        status, value = self.request("GET", f"/volumes/{urllib.parse.quote(name)}")
        if status == 404:
            return None
        assert status == 200, value
        return value

    def create_volume(self, name, labels):
        """A volume made as another tool would make it (its own labels)."""
        status, value = self.request("POST", "/volumes/create", body={"Name": name, "Labels": labels})
        assert status == 201, value
        return value

    def remove_volume(self, name):
        status, value = self.request("DELETE", f"/volumes/{urllib.parse.quote(name)}")
        assert status in (204, 404), value

    def create_container(self, name, image, labels, nano_cpus=None, start=True):
        """A running container of someone else (not tycho's), labelled ``labels``; its id."""
        body = {"Image": image, "Labels": labels, "Cmd": ["serve", "8080"],
                "HostConfig": {"NanoCpus": nano_cpus} if nano_cpus else {}}
        status, value = self.request("POST", f"/containers/create?name={urllib.parse.quote(name)}", body=body)
        assert status == 201, value
        if start:
            status, started = self.request("POST", f"/containers/{value['Id']}/start")
            assert status in (204, 304), started
        return value["Id"]

    def remove_container(self, ident):
        status, value = self.request("DELETE", f"/containers/{ident}?force=1&v=1")
        assert status in (204, 404), value

    def create_network(self, name, labels):
        status, value = self.request("POST", "/networks/create", body={"Name": name, "Labels": labels})
        assert status == 201, value
        return value["Id"]

    def network(self, ident):
        """The network ``ident`` as inspected, or None when there is none."""
        status, value = self.request("GET", f"/networks/{ident}")
        if status == 404:
            return None
        assert status == 200, value
        return value

    def remove_network(self, ident):
        status, value = self.request("DELETE", f"/networks/{ident}")
        assert status in (204, 404), value

    def container(self, ident):
        """The container ``ident`` as inspected, or None when there is none."""
        status, value = self.request("GET", f"/containers/{ident}/json")
        if status == 404:
            return None
        assert status == 200, value
        return value

    def leftovers(self, guid):
        """Names of the containers, networks and volumes labelled ``tycho-guid=<guid>``."""
        label = f"tycho-guid={guid}"
        return {
            "containers": [c["Names"][0] for c in self.containers(label)],
            "networks": [n["Name"] for n in self.networks(label)],
            "volumes": [v["Name"] for v in self.volumes(label)],
        }

    def purge(self, guid):
        """Removes everything labelled with ``guid`` (test clean-up, volumes included)."""
        label = f"tycho-guid={guid}"
        for c in self.containers(label):
            self.request("DELETE", f"/containers/{c['Id']}?force=1&v=1")
        for n in self.networks(label):
            self.request("DELETE", f"/networks/{n['Id']}")
        for v in self.volumes(label):
            self.request("DELETE", f"/volumes/{v['Name']}")

    def image_exists(self, ref):
        status, _ = self.request("GET", f"/images/{ref}/json")
        return status == 200

    def import_image(self, tar_bytes, repo, tag, changes):
        query = urllib.parse.urlencode([("fromSrc", "-"), ("repo", repo), ("tag", tag)]
                                       + [("changes", c) for c in changes])
        status, value = self.request("POST", f"/images/create?{query}", body=tar_bytes,
                                     headers={"Content-Type": "application/x-tar"}, timeout=300)
        assert status == 200, value


def build_httpd_image(engine, work_dir):
    """``tycho-test-httpd:<source hash>``: the static httpd in an otherwise empty image."""
    source = HTTPD_SOURCE.read_bytes()
    tag = hashlib.sha256(source).hexdigest()[:12]
    ref = f"{IMAGE_REPO}:{tag}"
    if engine.image_exists(ref):
        return ref
    rustc = shutil.which("rustc")
    assert rustc, "rustc is needed to build the test image"
    binary = Path(work_dir) / "httpd"
    subprocess.run([rustc, "-O", "-C", "target-feature=+crt-static", "-C", "strip=symbols",
                    "-o", str(binary), str(HTTPD_SOURCE)], check=True, timeout=600)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tar.gettarinfo(str(binary), arcname="httpd")
        info.mode = 0o755
        info.uid = info.gid = 0
        with open(binary, "rb") as stream:
            tar.addfile(info, stream)
        for directory in ("tmp", "work"):
            d = tarfile.TarInfo(directory)
            d.type = tarfile.DIRTYPE
            d.mode = 0o1777
            tar.addfile(d)
    engine.import_image(buf.getvalue(), IMAGE_REPO, tag,
                        ['ENTRYPOINT ["/httpd"]', 'CMD ["serve", "8080"]'])
    assert engine.image_exists(ref)
    return ref


class FaultProxy:
    """A Unix socket in front of the Engine's that answers HTTP 500 to the ``nth``
    request whose method, path start and path end match ``method``/``prefix``/``suffix`` (and passes every
    other request through, one request per connection)."""

    def __init__(self, directory, upstream, method, prefix, nth=1, suffix=""):
        self.path = str(Path(directory) / "engine.sock")
        self.upstream = upstream
        self.method, self.prefix, self.suffix, self.nth = method, prefix, suffix, nth
        self.seen = 0
        self.injected = 0
        self.log = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(32)
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _read_request(sock):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None, b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return lines, body

    def _serve(self, client):
        try:
            lines, body = self._read_request(client)
            if lines is None:
                return
            method, target, _ = lines[0].split(" ", 2)
            path = target.split("?", 1)[0]
            # Strip the API version prefix (/v1.41/...), not the /volumes of a path.
            if re.match(r"/v[0-9][0-9.]*/", path):
                path = "/" + path.split("/", 2)[2]
            with self._lock:
                self.log.append((method, path))
                fault = False
                if method == self.method and path.startswith(self.prefix) and path.endswith(self.suffix):
                    self.seen += 1
                    fault = self.seen == self.nth
                    if fault:
                        self.injected += 1
            if fault:
                payload = b'{"message":"injected fault: engine error"}'
                client.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                               b"Content-Length: " + str(len(payload)).encode() + b"\r\nConnection: close\r\n\r\n"
                               + payload)
                return
            headers = [h for h in lines[1:] if h and not h.lower().startswith("connection:")]
            request = "\r\n".join([lines[0]] + headers + ["Connection: close", "", ""]).encode("latin-1") + body
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            upstream.sendall(request)
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                client.sendall(chunk)
            upstream.close()
        except OSError:
            pass
        finally:
            client.close()

    def close(self):
        self._stop = True
        self._server.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def wait_for(predicate, timeout=90.0, interval=0.5, what="condition"):
    """Polls ``predicate`` until it returns a true value (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached after {timeout} s (last: {last!r})")


# What an earlier tycho run leaves on the Engine (delete keeps volumes): the shared
# directory's volume labelled with that run's system (as tycho labelled volumes before
# they were marked shared) and a user's claim volume.
LEFTOVER_GUID = "0123456789abcdef0123456789abcdef"
LEFTOVERS = {
    "stdnfs_shared": {"executor": "tycho", "tycho-guid": LEFTOVER_GUID, "username": "earlier-run",
                      "app-name": "earlier"},
    "stdnfs_earlier-run": {"executor": "tycho", "tycho-shared": "true", "tycho-claim": "stdnfs"},
}


def seed_leftovers(engine):
    """Creates the LEFTOVERS that do not exist yet (an existing one is a leftover already)."""
    for name, labels in LEFTOVERS.items():
        if engine.volume(name) is None:
            engine.create_volume(name, labels)
            print(f"seeded volume {name} {labels}")
        else:
            print(f"volume {name} is there already: {engine.volume(name)['Labels']}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["seed-leftovers"]:
        sys.exit("usage: docker_engine.py seed-leftovers")
    engine = Engine()
    if not engine.reachable():
        # tests/dockerc/test_docker.py fails under CI then, naming the socket.
        print(f"no Docker Engine answers at {engine.path}: nothing seeded")
        sys.exit(0)
    seed_leftovers(engine)
