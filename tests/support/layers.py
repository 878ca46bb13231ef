"""The layer rule of src/, checked over `crate::` / `super::` paths (issue 23, parts 1 and 3).

Run from the repository root (or pass the root):  python tests/support/layers.py [ROOT]

It fails (exit 1, one line per finding) when
- a top-level module of src/ uses a module of a higher layer (LAYERS below; the faces may use
  every layer below them, and each other only along ALLOWED_FACE_EDGES);
- two top-level modules of src/ (a file or a folder and everything in it) import each other,
  directly or through others (a cycle);
- two files of one folder import each other (a cycle); a folder's mod.rs re-exporting its
  children, and a child using its parents, are fine;
- a top-level module of src/ is not assigned a layer;
- a function is longer than MAX_FN_LINES lines without a `// Long because: ...` line among
  the comment and attribute lines above it;
- a `Result` (any path: `Result`, `std::result::Result`, `PyResult`-like aliases excepted)
  has `String` as its error type, outside `#[cfg(test)]` modules: errors are the crate's
  `Error` (issue 23 part 3). A `// layers: allow-string-error (reason)` line among the
  comment, attribute and signature lines above it waives one, with its reason.

Paths are read from the code with comments and string literals removed, so a doc link or a
message naming a module is no dependency.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

# Bottom to top. A module may use its own layer's modules and every layer below it.
LAYERS: List[Tuple[str, List[str]]] = [
    ("base", ["error", "limits", "environment", "metrics", "runtime", "offload", "test_alloc"]),
    ("text", ["text"]),
    # The configuration file is YAML: it reads with text::yaml.
    ("config", ["config"]),
    # The template engine knows no model; the model renders the compose file's strings with it.
    ("render", ["render"]),
    ("model", ["model"]),
    ("compile", ["compile"]),
    ("registry", ["registry"]),
    ("exec", ["exec"]),
    ("faces", ["server", "cli", "bindings"]),
]
# Modules of one layer that must not use each other, except along the edges listed.
SEPARATE_LAYERS = {"faces"}
ALLOWED_FACE_EDGES: Dict[Tuple[str, str], str] = {
    ("cli", "server"): "`tycho api` starts the REST server",
    ("bindings", "cli"): "`tycho._native.cli_main` runs the CLI in process",
}
MAX_FN_LINES = 80
LONG_REASON = "// Long because:"
STRING_ERROR_WAIVER = re.compile(r"^// layers: allow-string-error \(\S[^)]*\)")

Module = Tuple[str, ...]


def module_of(src: Path, path: Path) -> Module:
    """`src/exec/kube/mod.rs` -> ("exec", "kube"); `src/lib.rs` -> ()."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(parts)


def strip_comments_and_strings(text: str) -> str:
    """The code with comments and string/char literals blanked (newlines kept)."""
    out: List[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        m = re.match(r'b?r(#*)"', text[i:i + 12])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
            continue
        if c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])
            if m:
                out.append("' '")
                i += m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def expand_use(tree: str) -> List[str]:
    """`a::{b::C, d}` -> ["a::b::C", "a::d"] (nested groups too)."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    depth, inner_end = 1, 0
    for k, ch in enumerate(rest):
        depth += ch == "{"
        depth -= ch == "}"
        if depth == 0:
            inner_end = k
            break
    inner = rest[:inner_end]
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    items.append(cur)
    paths: List[str] = []
    for item in items:
        if item:
            paths.extend(head + p for p in expand_use(item))
    return paths


PATH_RE = re.compile(r"\b(?:crate|super|self)(?:::(?:[A-Za-z_][A-Za-z0-9_]*|\{))+")


def paths_in(code: str) -> List[str]:
    """Every crate-relative path in the code: `use` trees expanded, and inline paths."""
    paths: List[str] = []
    for m in re.finditer(r"\buse\s+((?:crate|super|self)::[^;]*);", code):
        paths.extend(expand_use(m.group(1)))
    no_use = re.sub(r"\buse\s+[^;]*;", "", code)
    for m in PATH_RE.finditer(no_use):
        paths.append(m.group(0).rstrip(":{"))
    return paths


def resolve(path: str, here: Module, is_mod_file: bool, modules: Set[Module]) -> Optional[Module]:
    """The module a path points into (the longest module prefix), or None for the crate root."""
    parts = path.split("::")
    base: List[str]
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    else:
        # `self` of a file is the file's module; `super` of a mod.rs is its folder's parent.
        base = list(here)
        if parts[0] == "super" and not is_mod_file and base:
            base.pop()
            parts = parts[1:]
        while parts and parts[0] in ("self", "super"):
            if parts[0] == "super" and base:
                base.pop()
            parts = parts[1:]
    best: Module = tuple(base)
    cur = list(base)
    for p in parts:
        cur.append(p)
        if tuple(cur) in modules:
            best = tuple(cur)
        else:
            break
    return best if best else None


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one node (Tarjan), sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def long_functions(path: Path, text: str) -> List[Tuple[int, str, int, bool]]:
    """(line, name, length, explained) of every fn body longer than MAX_FN_LINES lines."""
    code = strip_comments_and_strings(text)
    raw_lines = text.split("\n")
    found = []
    for m in re.finditer(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)", code):
        brace = code.find("{", m.end())
        semi = code.find(";", m.end())
        if brace < 0 or (0 <= semi < brace):
            continue  # a trait method without a body
        depth, j = 0, brace
        while j < len(code):
            depth += code[j] == "{"
            depth -= code[j] == "}"
            if depth == 0:
                break
            j += 1
        start = code.count("\n", 0, m.start()) + 1
        end = code.count("\n", 0, j) + 1
        length = end - start + 1
        if length <= MAX_FN_LINES:
            continue
        explained = False
        k = start - 2
        while k >= 0:
            line = raw_lines[k].strip()
            if line.startswith(LONG_REASON):
                explained = True
                break
            if line.startswith(("//", "#[", "#![")) or line == "" or line.startswith("pub"):
                k -= 1
                continue
            break
        found.append((start, m.group(1), length, explained))
    return found


def blank_test_modules(code: str) -> str:
    """The code with the bodies of `#[cfg(test)] mod x { ... }` blanked (newlines kept)."""
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")
    while True:
        m = pattern.search(code)
        if not m:
            return code
        depth, j = 0, m.end() - 1
        while j < len(code):
            depth += code[j] == "{"
            depth -= code[j] == "}"
            if depth == 0:
                break
            j += 1
        code = code[: m.start()] + "\n" * code.count("\n", m.start(), j + 1) + code[j + 1 :]


def generic_args(code: str, open_at: int) -> Optional[List[str]]:
    """The top-level arguments of the generic list whose `<` is at open_at (`->` and
    nested `<>`, `()`, `[]` understood), or None when it does not close."""
    args: List[str] = []
    depth, cur, j = 0, "", open_at
    while j < len(code):
        ch = code[j]
        if code.startswith("->", j):
            cur += "->"
            j += 2
            continue
        if ch in "<([":
            depth += 1
            if depth == 1:
                j += 1
                continue
        elif ch in ">)]":
            depth -= 1
            if depth == 0:
                args.append(cur.strip())
                return args
        elif ch == "," and depth == 1:
            args.append(cur.strip())
            cur = ""
            j += 1
            continue
        elif ch in ";{":
            return None
        cur += ch
        j += 1
    return None


STRING_TYPES = {"String", "std::string::String", "alloc::string::String", "::std::string::String"}


def string_errors(text: str) -> List[Tuple[int, str]]:
    """(line, the type as written) of every `Result<T, String>` outside test modules and
    not waived."""
    code = blank_test_modules(strip_comments_and_strings(text))
    raw_lines = text.split("\n")
    found = []
    for m in re.finditer(r"\bResult\s*<", code):
        args = generic_args(code, m.end() - 1)
        if not args or len(args) != 2 or re.sub(r"\s+", "", args[1]) not in STRING_TYPES:
            continue
        line = code.count("\n", 0, m.start()) + 1
        waived = False
        k = line - 2
        while k >= 0:
            above = raw_lines[k].strip()
            if STRING_ERROR_WAIVER.match(above):
                waived = True
                break
            if above.startswith(("//", "#[")) or (above and not above.endswith((";", "{", "}"))):
                k -= 1
                continue
            break
        if not waived:
            written = re.sub(r"\s+", " ", f"Result<{', '.join(args)}>")
            found.append((line, written))
    return found


def check(root: Path) -> Tuple[List[str], List[str]]:
    """(failures, notes) of the tree under root/src."""
    src = root / "src"
    files = sorted(src.rglob("*.rs"))
    modules: Set[Module] = {module_of(src, f) for f in files}
    layer_of: Dict[str, int] = {}
    layer_name: Dict[str, str] = {}
    for rank, (name, members) in enumerate(LAYERS):
        for mod in members:
            layer_of[mod] = rank
            layer_name[mod] = name
    failures: List[str] = []
    notes: List[str] = []
    top_graph: Dict[str, Set[str]] = {}
    top_why: Dict[Tuple[str, str], str] = {}
    file_graph: Dict[str, Set[str]] = {}
    for f in files:
        here = module_of(src, f)
        rel = f.relative_to(root).as_posix()
        text = f.read_text(encoding="utf-8")
        for line, name, length, explained in long_functions(f, text):
            if not explained:
                failures.append(
                    f"{rel}:{line}: fn {name} is {length} lines (over {MAX_FN_LINES}) "
                    f"and has no `{LONG_REASON} ...` line above it"
                )
            else:
                notes.append(f"{rel}:{line}: fn {name} is {length} lines (explained)")
        for line, written in string_errors(text):
            failures.append(
                f"{rel}:{line}: `{written}` has a String error: use crate::error::Error "
                "(kind + field + cause)"
            )
        if not here:
            continue
        top = here[0]
        top_graph.setdefault(top, set())
        if top not in layer_of:
            failures.append(f"{rel}: top-level module `{top}` has no layer (add it to LAYERS in {__file__})")
        is_mod_file = f.name == "mod.rs"
        for p in paths_in(strip_comments_and_strings(text)):
            target = resolve(p, here, is_mod_file, modules)
            if target is None:
                continue
            if target[0] != top:
                top_graph[top].add(target[0])
                top_why.setdefault((top, target[0]), f"{rel}: {p}")
            # Within one folder: an edge between two sibling files (or subfolders).
            if len(here) >= 2 and len(target) >= len(here) and target[: len(here) - 1] == here[:-1]:
                a, b = here, target[: len(here)]
                if a != b and not is_mod_file:
                    file_graph.setdefault("::".join(a), set()).add("::".join(b))
    for (a, b), why in sorted(top_why.items()):
        if a not in layer_of or b not in layer_of:
            continue
        if layer_of[b] > layer_of[a]:
            failures.append(
                f"upward import: {a} ({layer_name[a]}) uses {b} ({layer_name[b]}), at {why}"
            )
        elif (
            layer_of[a] == layer_of[b]
            and layer_name[a] in SEPARATE_LAYERS
            and (a, b) not in ALLOWED_FACE_EDGES
        ):
            failures.append(f"face uses face: {a} uses {b}, at {why} (not in ALLOWED_FACE_EDGES)")
    for cycle in find_cycles(top_graph):
        edges = [f"{a}->{b} ({top_why[(a, b)]})" for a in cycle for b in cycle if (a, b) in top_why]
        failures.append(f"import cycle between top-level modules {cycle}: " + "; ".join(edges))
    for cycle in find_cycles(file_graph):
        failures.append(f"import cycle between files of one folder: {cycle}")
    return failures, notes


def main(argv: List[str]) -> int:
    verbose = "-v" in argv
    args = [a for a in argv[1:] if a != "-v"]
    root = Path(args[0]) if args else Path.cwd()
    if not (root / "src").is_dir():
        print(f"layers: no src/ under {root}", file=sys.stderr)
        return 2
    failures, notes = check(root)
    if verbose:
        for n in notes:
            print(n)
    for f in failures:
        print(f)
    if failures:
        print(f"layers: {len(failures)} finding(s)")
        return 1
    print("layers: no upward import, no cycle, no unexplained long function, no String error")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
