"""Resolve registry contexts with whichever ``tycho`` this interpreter imports (stdlib only).

Run by tests/parity/test_registry_parity.py twice: with the original tycho-api 1.17.3 (in its
own virtualenv) and with ours. Input on stdin (JSON)::

    {"mode": "contexts"}                      -> the context names of the bundled registry
    {"mode": "resolve", "products": [...],     -> one result per product, in order
     "settings_base": "http://127.0.0.1:PORT"}
    {"mode": "sequence", "products": [...]}    -> the app ids of each product, all
                                                  built one after the other in this process

``tycho.context`` is imported once; then every product is resolved in a process of its
own, forked before any ``TychoContext`` was built (the original's ``inherit`` keeps the
apps of earlier contexts in a mutable default argument, so a process that resolved one
context answers differently for the next). Each child works in an empty directory of
its own (the original writes its HTTP cache, ``tycho-registry.sqlite``, to the working
directory) and with the network fenced off: a connection or name lookup for anything but
the loopback address is refused and recorded in ``network``.

A result is ``{"product", "network", "apps", "registry", "app_defaults", "settings",
"spec_urls"}`` or ``{"product", "network", "error", "message"}`` when construction
raises. ``settings`` holds ``get_settings(app_id)`` for every app, fetched from
``settings_base``: before asking, each app's spec URL ``https://HOST/PATH`` is pointed
at ``<settings_base>/HOST/PATH`` (the spec URLs as resolved are in ``spec_urls``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import traceback

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def fence_network(attempts: list) -> None:
    """Refuse (and record) every connection and name lookup except loopback ones."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(sock, address) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True
        return isinstance(address, tuple) and address[0] in LOOPBACK

    def connect(sock, address):
        if not allowed(sock, address):
            attempts.append(f"connect {address!r}")
            raise OSError(f"network fenced off by the parity test: {address!r}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not allowed(sock, address):
            attempts.append(f"connect {address!r}")
            return 111
        return real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in LOOPBACK:
            attempts.append(f"getaddrinfo {name!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"name lookup fenced off by the parity test: {name}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo


def local_url(url: str, base: str) -> str:
    """``https://HOST/PATH`` -> ``<base>/HOST/PATH``."""
    rest = url.split("://", 1)[1] if "://" in url else url
    return f"{base.rstrip('/')}/{rest}"


def resolve(product: str, settings_base: str) -> dict:
    attempts: list = []
    fence_network(attempts)
    from tycho.context import TychoContext

    result: dict = {"product": product, "network": attempts}
    try:
        context = TychoContext(product=product)
    except Exception as exc:  # reported to the test, which compares it
        result.update(error=type(exc).__name__, message=str(exc), trace=traceback.format_exc()[-2000:])
        return result
    result["apps"] = json.loads(json.dumps(context.apps))
    result["registry"] = json.loads(json.dumps(context.registry))
    result["app_defaults"] = json.loads(json.dumps(context.app_defaults))
    result["spec_urls"] = {app_id: app.get("spec") for app_id, app in context.apps.items()}
    settings = {}
    for app_id, app in context.apps.items():
        app["spec"] = local_url(app["spec"], settings_base)
        try:
            settings[app_id] = context.get_settings(app_id)
        except Exception as exc:
            settings[app_id] = {"error": type(exc).__name__, "message": str(exc)}
    result["settings"] = settings
    return result


def in_child(product: str, settings_base: str, out_path: str) -> None:
    """Fork; the child resolves ``product`` in an empty working directory and writes
    its result to ``out_path``. Returns the child's pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        workdir = tempfile.mkdtemp(prefix=f"tycho-registry-{product}-")
        os.chdir(workdir)
        result = resolve(product, settings_base)
    except BaseException as exc:  # never let the child return into the parent's code
        result = {"product": product, "error": "driver", "message": repr(exc), "trace": traceback.format_exc()}
        code = 1
    try:
        with open(out_path, "w") as out:
            json.dump(result, out)
    finally:
        os._exit(code)


def main() -> None:
    job = json.loads(sys.stdin.read())
    if job["mode"] == "contexts":
        import tycho
        import yaml

        path = os.path.join(os.path.dirname(tycho.__file__), "conf", "app-registry.yaml")
        with open(path) as stream:
            print(json.dumps(list(yaml.safe_load(stream)["contexts"])))
        return
    if job["mode"] == "sequence":
        # Every product in this one process, one after the other: the app ids of each.
        os.chdir(tempfile.mkdtemp(prefix="tycho-registry-sequence-"))
        fence_network([])
        from tycho.context import TychoContext

        print(json.dumps([list(TychoContext(product=p).apps) for p in job["products"]]))
        return
    import tycho.context  # noqa: F401 - imported once, before forking

    products = job["products"]
    with tempfile.TemporaryDirectory(prefix="tycho-registry-driver-") as tmp:
        outs = [os.path.join(tmp, f"{i}.json") for i in range(len(products))]
        # A few children at a time: each is short, the machine may have two cores.
        results = []
        batch = max(1, int(job.get("parallel", 4)))
        for start in range(0, len(products), batch):
            pids = [in_child(p, job["settings_base"], outs[start + i])
                    for i, p in enumerate(products[start:start + batch])]
            for pid in pids:
                os.waitpid(pid, 0)
        for product, out in zip(products, outs):
            try:
                with open(out) as f:
                    results.append(json.load(f))
            except (OSError, ValueError) as exc:
                results.append({"product": product, "error": "driver", "message": f"no result: {exc!r}"})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
