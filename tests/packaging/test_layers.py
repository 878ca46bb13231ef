"""The layer rule of src/ (tests/support/layers.py): it passes on this tree, and it fails on a
tree with an upward import, a cycle between top-level modules, a cycle between files of one
folder, an unassigned top-level module, an unexplained long function, or a `Result<_, String>`
(unless waived with a reason)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "support" / "layers.py"


def run(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=120
    )


def tree(tmp_path: Path, files: dict) -> Path:
    for name, text in files.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


CLEAN = {
    "lib.rs": "pub mod error;\npub mod model;\npub mod exec;\npub mod server;\n",
    "error.rs": "//! errors\npub struct Error;\n",
    "model/mod.rs": "//! model\npub mod build;\npub use build::System;\n",
    "model/build.rs": "//! build\nuse crate::error::Error;\npub struct System;\n",
    "exec/mod.rs": "//! exec\nuse crate::model::System;\n/// `crate::server` in a comment is no import\n"
    'pub fn run(_: System) { let _ = "crate::server::x"; }\n',
    "server/mod.rs": "//! server\nuse crate::{exec::run, model::{build::System}};\n",
}


def test_this_tree_passes():
    result = run(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_clean_synthetic_tree_passes(tmp_path):
    result = run(tree(tmp_path, CLEAN))
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upward_import_fails(tmp_path):
    files = dict(CLEAN)
    files["model/build.rs"] += "fn f() { crate::exec::run(System); }\n"
    result = run(tree(tmp_path, files))
    assert result.returncode == 1
    assert "upward import: model (model) uses exec (exec)" in result.stdout
    assert "import cycle between top-level modules ['exec', 'model']" in result.stdout


def test_a_cycle_inside_one_layer_fails(tmp_path):
    files = dict(CLEAN)
    files["model/mod.rs"] = "//! model\npub mod build;\npub mod template;\n"
    files["model/build.rs"] = "//! build\nuse super::template::render;\npub struct System;\n"
    files["model/template.rs"] = "//! template\nuse super::build::System;\npub fn render() {}\n"
    files["server/mod.rs"] = "//! server\n"
    files["exec/mod.rs"] = "//! exec\n"
    result = run(tree(tmp_path, files))
    assert result.returncode == 1
    assert "import cycle between files of one folder: ['model::build', 'model::template']" in result.stdout


def test_faces_must_not_import_each_other(tmp_path):
    files = dict(CLEAN)
    files["bindings/mod.rs"] = "//! bindings\nuse crate::server;\n"
    result = run(tree(tmp_path, files))
    assert result.returncode == 1
    assert "face uses face: bindings uses server" in result.stdout


def test_a_module_without_a_layer_fails(tmp_path):
    files = dict(CLEAN)
    files["helpers.rs"] = "//! misc\n"
    result = run(tree(tmp_path, files))
    assert result.returncode == 1
    assert "top-level module `helpers` has no layer" in result.stdout


def test_a_long_function_needs_a_reason(tmp_path):
    body = "".join(f"    let _x{i} = {i};\n" for i in range(90))
    files = dict(CLEAN)
    files["error.rs"] = "//! errors\npub fn long() {\n" + body + "}\n"
    result = run(tree(tmp_path, files))
    assert result.returncode == 1
    assert "src/error.rs:2: fn long is 92 lines" in result.stdout
    files["error.rs"] = "//! errors\n// Long because: a table.\n#[inline]\npub fn long() {\n" + body + "}\n"
    result = run(tree(tmp_path, files))
    assert result.returncode == 0, result.stdout


def test_a_string_error_fails(tmp_path):
    files = dict(CLEAN)
    files["model/build.rs"] += (
        "/// `Result<(), String>` in a doc comment is no finding\n"
        "pub fn check(x: u8) -> std::result::Result<Vec<String>, String> {\n"
        '    let _ = "Result<u8, String>";\n'
        "    Ok(vec![x.to_string()])\n"
        "}\n"
        "pub type Checked = Result<Box<dyn Fn() -> u8>, std::string::String>;\n"
        "pub fn fine() -> Result<String, crate::error::Error> { Ok(String::new()) }\n"
        "#[cfg(test)]\nmod tests {\n    fn helper() -> Result<(), String> { Ok(()) }\n}\n"
    )
    result = run(tree(tmp_path, files))
    assert result.returncode == 1
    findings = [line for line in result.stdout.splitlines() if "has a String error" in line]
    assert findings == [
        "src/model/build.rs:5: `Result<Vec<String>, String>` has a String error: "
        "use crate::error::Error (kind + field + cause)",
        "src/model/build.rs:9: `Result<Box<dyn Fn() -> u8>, std::string::String>` has a String "
        "error: use crate::error::Error (kind + field + cause)",
    ], result.stdout


def test_a_string_error_can_be_waived_with_a_reason(tmp_path):
    files = dict(CLEAN)
    signature = "pub(crate) fn legacy(\n    x: u8,\n) -> Result<(), String> {\n    Ok(())\n}\n"
    files["model/build.rs"] += "// layers: allow-string-error ()\n" + signature
    result = run(tree(tmp_path, files))
    assert result.returncode == 1, "a waiver without a reason waives nothing"
    files["model/build.rs"] = CLEAN["model/build.rs"] + (
        "/// Old.\n// layers: allow-string-error (callers are being rewritten)\n" + signature
    )
    result = run(tree(tmp_path, files))
    assert result.returncode == 0, result.stdout
