"""The manual's paths exist in a clone (README.md, COMPATIBILITY.md, docs/**/*.md).

* every relative Markdown link points at a file or folder of the repository (and, to a
  Markdown page with ``#anchor``, at one of its headings);
* every repository path written in code (inline code and fenced blocks: tokens that
  start with a top-level entry of the repository, such as ``src/``, ``tests/`` or
  ``deploy/``) names a tracked file or folder (a ``*`` pattern: at least one);
* every page named in mkdocs.yml's nav exists;
* README.md stays under 250 lines (the rest of the manual is the site).

"Exists in a clone" means tracked by git (``git ls-files``), so an untracked local file
does not pass. Ignored: URLs, paths outside the repository such as the optional
``../shared`` data, placeholders (``<GUID>``, ``{...}``), and the files the site's
build generates (``docs/hooks.py``).
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]  # <repo>/tests/packaging/test_docs.py
README_MAX_LINES = 250
# Written into the site by docs/hooks.py at build time, never into the tree.
GENERATED = {"docs/reference/openapi.json"}

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
FENCE = re.compile(r"^([ \t]*)(```+|~~~+)[^\n]*\n(.*?)^\1\2[ \t]*$", re.S | re.M)
TOKEN_SPLIT = re.compile(r"[\s,;()\[\]\"'=|]+")
PLACEHOLDER = re.compile(r"[<>{}$…]|\.\.\.")


@lru_cache(maxsize=1)
def tracked() -> frozenset[str]:
    """The repository's files, as a clone has them."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"git ls-files failed in {ROOT}: {exc} (the test needs a git checkout)")
    files = {f for f in out.split("\0") if f}
    # Files of this change that are staged or new are tracked once committed; a clone of
    # the commit has them. Untracked, not ignored files are counted too, so the test
    # can run before the commit; ignored files (build output, venvs) never are.
    new = subprocess.run(
        ["git", "ls-files", "-z", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True, timeout=60,
    ).stdout.decode()
    files |= {f for f in new.split("\0") if f}
    return frozenset(files)


@lru_cache(maxsize=1)
def tracked_dirs() -> frozenset[str]:
    dirs = set()
    for f in tracked():
        parts = f.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return frozenset(dirs)


@lru_cache(maxsize=1)
def top_level() -> frozenset[str]:
    return frozenset(f.split("/")[0] for f in tracked())


def exists(rel: str) -> bool:
    rel = rel.rstrip("/")
    if rel in GENERATED:
        return True
    if any(ch in rel for ch in "*?"):
        return any(fnmatch.fnmatchcase(f, rel) for f in tracked())
    return rel in tracked() or rel in tracked_dirs()


def manual_pages() -> list[Path]:
    pages = [ROOT / "README.md", ROOT / "COMPATIBILITY.md"]
    pages += sorted((ROOT / "docs").rglob("*.md"))
    return [p for p in pages if p.is_file()]


def strip_code(text: str) -> str:
    text = FENCE.sub("", text)
    return INLINE_CODE.sub("", text)


def code_texts(text: str) -> list[str]:
    blocks = [m.group(3) for m in FENCE.finditer(text)]
    rest = FENCE.sub("", text)
    return blocks + [m.group(2) for m in INLINE_CODE.finditer(rest)]


def slugify(heading: str) -> str:
    """A heading's anchor as Python-Markdown's toc (MkDocs) and GitHub both make it
    for the headings of this manual: code marks and punctuation dropped, lower case,
    spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slugify(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def repo_relative(page: Path, target: str) -> str | None:
    """`target` of a link in `page`, relative to the repository root; None when it
    points outside the repository."""
    resolved = (page.parent / target).resolve()
    try:
        return resolved.relative_to(ROOT).as_posix()
    except ValueError:
        return None


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("page", manual_pages(), ids=page_id)
def test_links_point_into_the_repository(page):
    text = strip_code(page.read_text())
    broken = []
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            if target.startswith("#") and target[1:] not in anchors(page):
                broken.append(f"{target} (no such heading in {page_id(page)})")
            continue
        path, _, anchor = target.partition("#")
        rel = repo_relative(page, path)
        if rel is None:
            if not path.startswith("../shared") and "/shared/" not in str((page.parent / path).resolve()):
                broken.append(f"{target} (outside the repository)")
            continue
        if not exists(rel):
            broken.append(f"{target} ({rel} is not in the repository)")
        elif anchor and rel.endswith(".md") and anchor not in anchors(ROOT / rel):
            broken.append(f"{target} (no heading #{anchor} in {rel})")
    assert not broken, f"{page_id(page)}: broken links: {broken}"


def repo_paths_in_code(text: str) -> set[str]:
    found = set()
    for code in code_texts(text):
        for token in TOKEN_SPLIT.split(code):
            token = token.strip().strip(".:`")
            if token.startswith("./"):
                token = token[2:]
            token = token.split("#", 1)[0]
            if not token or PLACEHOLDER.search(token):
                continue
            first = token.split("/", 1)[0]
            if first in top_level() and ("/" in token or first == token and "." in token):
                found.add(token)
    return found


@pytest.mark.parametrize("page", manual_pages(), ids=page_id)
def test_paths_in_code_exist_in_a_clone(page):
    missing = sorted(p for p in repo_paths_in_code(page.read_text()) if not exists(p))
    assert not missing, f"{page_id(page)} names paths that a clone does not have: {missing}"


def test_the_checks_find_paths_and_links():
    """The extraction sees what the manual writes (so an empty result is not a pass)."""
    sample = "Run `tests/packaging/test_docs.py`, see [cli](docs/cli.md#tycho-render).\n```bash\ntycho up -f examples/nginx/docker-compose.yaml\n```\n"
    assert repo_paths_in_code(sample) == {"tests/packaging/test_docs.py", "examples/nginx/docker-compose.yaml"}
    assert [m.group(1) for m in LINK.finditer(strip_code(sample))] == ["docs/cli.md#tycho-render"]
    assert not exists("src/no-such-file.rs")
    assert slugify("`tycho up`, `status`, `down`, `modify`") == "tycho-up-status-down-modify"
    assert slugify("Placement, GPUs and usernames") == "placement-gpus-and-usernames"
    assert len(repo_paths_in_code((ROOT / "README.md").read_text())) >= 3


def nav_pages(nav) -> list[str]:
    pages = []
    for item in nav:
        if isinstance(item, str):
            pages.append(item)
        elif isinstance(item, dict):
            for value in item.values():
                pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_nav_page_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    assert "index.md" in pages
    missing = [p for p in pages if not exists(f"docs/{p}")]
    assert not missing, f"mkdocs.yml's nav names pages that docs/ lacks: {missing}"


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines; the rest belongs in docs/"
    text = "\n".join(lines)
    # The two quick-start commands, as CI and newcomers run them.
    assert "python3 -m pip install . && python3 -m tycho render -f examples/jupyter-ds/docker-compose.yaml" in text
    assert "bash .ci/run" in text
