r"""MkDocs hooks of the manual: pages generated from the installed package at build time.

* ``reference/openapi.json``: the OpenAPI document ``tycho api`` serves at
  ``/openapi.json`` (built by the Rust core, ``src/server/openapi.rs``), fetched from a
  ``tycho api -p 0`` process on 127.0.0.1 that this hook starts and stops; the REST API
  page renders it with the ``swagger-ui-tag`` plugin.
* ``<!-- tycho-help -->`` in a page: replaced by ``tycho --help`` and the ``--help`` of
  every subcommand that it lists, so the command-line page names every command.
* ``\|`` in code in a table cell (how GitHub needs a pipe there) shows as ``|``: MkDocs'
  tables keep code spans whole, so the backslash would show.

Both need the ``tycho`` package with its extension importable by the interpreter that
runs MkDocs (``pip install .``, ``maturin develop`` or the wheel; ``.ci/run`` builds the
site after installing the wheel). Nothing is fetched from outside this machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import lru_cache

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

OPENAPI_PATH = "reference/openapi.json"
HELP_MARKER = "<!-- tycho-help -->"
# Bounded: the server must listen and answer within this many seconds.
SERVER_DEADLINE = 60.0
# A token, so the document shows the bearer scheme a deployment uses.
DOCS_TOKEN = "docs-build-token"


def _env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TYCHO_", "REST_API", "KUBECONFIG"))}
    env.update(HOME=home, TYCHO_API_TOKEN=DOCS_TOKEN, KUBECONFIG=os.path.join(home, "no-kubeconfig"))
    return env


def _tycho(*args: str, home: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-m", "tycho", *args],
            capture_output=True, text=True, timeout=60, env=_env(home), stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise PluginError(f"`tycho {' '.join(args)}` did not answer in 60 s") from exc


def _check_importable() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import tycho._native"], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no error output"])[-1]
        raise PluginError(
            "the docs are generated from the installed tycho package (OpenAPI document, CLI help), "
            f"but {sys.executable} cannot import tycho._native ({last}): install it first "
            "(pip install . or maturin develop)"
        )


@lru_cache(maxsize=1)
def openapi_document() -> str:
    """The document a running `tycho api` serves, as indented JSON."""
    _check_importable()
    with tempfile.TemporaryDirectory(prefix="tycho-docs-") as home:
        log_path = os.path.join(home, "api.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tycho", "api", "-p", "0", "--host", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_env(home),
            )
            try:
                url = _wait_listening(proc, log_path)
                with urllib.request.urlopen(url + "/openapi.json", timeout=30) as answer:
                    document = json.loads(answer.read())
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    if "paths" not in document or "openapi" not in document:
        raise PluginError("tycho api's /openapi.json is not an OpenAPI document")
    return json.dumps(document, indent=2) + "\n"


def _wait_listening(proc: subprocess.Popen, log_path: str) -> str:
    deadline = time.monotonic() + SERVER_DEADLINE
    while time.monotonic() < deadline:
        with open(log_path, errors="replace") as f:
            text = f.read()
        found = re.search(r"listening on (http://\S+)", text)
        if found:
            return found.group(1)
        if proc.poll() is not None:
            raise PluginError(f"tycho api exited with {proc.returncode} before listening: {text.strip()}")
        time.sleep(0.05)
    raise PluginError(f"tycho api did not listen within {SERVER_DEADLINE:.0f} s")


def _subcommands(top_help: str) -> list[str]:
    """The commands `tycho --help` lists (clap's `Commands:` section), but `help`."""
    names: list[str] = []
    in_commands = False
    for line in top_help.splitlines():
        if line.strip() == "Commands:":
            in_commands = True
            continue
        if in_commands:
            if not line.strip() or not line.startswith("  "):
                break
            found = re.match(r"\s{2}(\S+)", line)
            if found and found.group(1) != "help":
                names.append(found.group(1))
    return names


@lru_cache(maxsize=1)
def cli_help() -> str:
    """Markdown: the help of `tycho` and of each of its commands."""
    _check_importable()
    with tempfile.TemporaryDirectory(prefix="tycho-docs-") as home:
        top = _tycho("--help", home=home)
        if top.returncode != 0:
            raise PluginError(f"`tycho --help` failed: {top.stderr.strip()}")
        commands = _subcommands(top.stdout)
        if not commands:
            raise PluginError("`tycho --help` lists no commands")
        parts = ["### `tycho --help`", "", "```text", top.stdout.rstrip(), "```", ""]
        for name in commands:
            sub = _tycho(name, "--help", home=home)
            if sub.returncode != 0:
                raise PluginError(f"`tycho {name} --help` failed: {sub.stderr.strip()}")
            parts += [f"### `tycho {name} --help`", "", "```text", sub.stdout.rstrip(), "```", ""]
    return "\n".join(parts)


def on_files(files, config):
    """Adds the OpenAPI document the REST API page renders."""
    files.append(File.generated(config, OPENAPI_PATH, content=openapi_document()))
    return files


TABLE_CELL = re.compile(r"(<td[^>]*>)(.*?)(</td>)", re.S)
CODE = re.compile(r"(<code[^>]*>)(.*?)(</code>)", re.S)


def _unescape_pipes(cell: re.Match) -> str:
    inner = CODE.sub(lambda c: c.group(1) + c.group(2).replace("\\|", "|") + c.group(3), cell.group(2))
    return cell.group(1) + inner + cell.group(3)


def on_page_content(html, page, config, files):
    """Pipes in code in table cells, as written for GitHub, read without the backslash."""
    return TABLE_CELL.sub(_unescape_pipes, html)


def on_page_markdown(markdown, page, config, files):
    """Puts the generated command-line help where a page asks for it."""
    if HELP_MARKER in markdown:
        markdown = markdown.replace(HELP_MARKER, cli_help())
    return markdown
