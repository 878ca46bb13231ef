"""What every supported CPython must do with the installed wheel (run by
tests/packaging/test_interpreters.py inside a fresh virtualenv of each interpreter).

    python interpreter_smoke.py EXAMPLES_DIR REGISTRY_DIR > result.json

1. Imports every public module of tycho-api 1.17.3's layout (the ones appstore imports).
2. Compiles every bundled example (``EXAMPLES_DIR/*/docker-compose.yaml``) through
   ``System.parse`` + ``render("pod.yaml")``.
3. Serves ``REGISTRY_DIR`` (an app registry) over HTTP from 127.0.0.1 and resolves its
   ``shop`` context with ``TychoContext``: the apps, a rendered spec, the settings.

Prints one JSON object; any failure is an exception (non-zero exit). Only the standard
library and ``tycho`` are imported.
"""

import functools
import http.server
import importlib
import json
import os
import sys
import threading
import warnings
from pathlib import Path

MODULES = (
    "tycho", "tycho.actions", "tycho.client", "tycho.compute", "tycho.config", "tycho.context",
    "tycho.core", "tycho.dockerc", "tycho.exceptions", "tycho.factory", "tycho.kube", "tycho.model",
    "tycho.tycho_utils",
)
PRINCIPAL = json.dumps({"username": "jdoe", "access_token": "tok", "refresh_token": "ref", "host": "h.example.org"})


def compile_examples(examples: Path) -> dict:
    from tycho.config import Config
    from tycho.model import System

    config = Config("conf/tycho.yaml")
    out = {}
    for compose in sorted(examples.glob("*/docker-compose.yaml")):
        name = compose.parent.name
        spec = _native_yaml(compose.read_text())
        system = System.parse(config, name, PRINCIPAL, spec, "default", {}, {})
        pod = list(system.render("pod.yaml"))
        out[name] = {
            "kinds": [d["kind"] for d in pod],
            "containers": [c["name"] for c in pod[0]["spec"]["containers"]],
        }
    return out


def _native_yaml(text: str):
    from tycho import _native

    docs = _native.yaml_load_all(text)
    assert len(docs) == 1, f"{len(docs)} documents"
    return docs[0]


def resolve_registry(registry: Path) -> dict:
    from tycho.context import TychoContext

    handler = functools.partial(_QuietHandler, directory=str(registry))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        context = TychoContext(product="shop", tycho_config_url=url)
        spec = context.get_spec("hello")
        return {
            "apps": sorted(context.apps),
            "hello_image": spec["services"]["hello"]["image"],
            "hello_settings": context.get_settings("hello"),
            "requests": _QuietHandler.paths,
        }
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    paths: list = []

    def log_message(self, *args):
        _QuietHandler.paths.append(self.path)


def main() -> None:
    examples, registry = Path(sys.argv[1]), Path(sys.argv[2])
    with warnings.catch_warnings():
        # No DeprecationWarning from tycho's own modules on any interpreter.
        warnings.filterwarnings("error", category=DeprecationWarning, module=r"tycho(\.|$)")
        for name in MODULES:
            importlib.import_module(name)
        result = {
            "python": list(sys.version_info[:2]),
            "tycho_file": os.path.dirname(importlib.import_module("tycho").__file__ or ""),
            "modules": list(MODULES),
            "examples": compile_examples(examples),
            "registry": resolve_registry(registry),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
