"""The `tycho` command line through subprocess, against the emulated Kubernetes API server:
up / status / down / modify, `up --wait`, kubectl's conventions (`-o`, `--dry-run`, `-f -`),
exit codes and one-line errors, a cluster that does not answer."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kube_emulator import kube_emulator, kube_emulator_session  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
NGINX = ROOT / "examples" / "nginx" / "docker-compose.yaml"
EXE = shutil.which("tycho") or str(Path(sys.executable).parent / "tycho")


@pytest.fixture
def kubeconfig(kube_emulator, tmp_path):  # noqa: F811
    return kube_emulator.write_kubeconfig(tmp_path / "kubeconfig")


def env_for(kubeconfig):
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    for var in ("NAMESPACE", "TYCHO_API_TOKEN", "REST_API"):
        env.pop(var, None)
    return env


def tycho(kubeconfig, *args, timeout=60):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=env_for(kubeconfig))


def assert_one_line_error(proc, code=1):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tycho: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def deployments(emu, namespace="default"):
    return [o for o in emu.objects() if o["kind"] == "Deployment" and o["metadata"]["namespace"] == namespace]


def up_json(kubeconfig, *extra):
    proc = tycho(kubeconfig, "up", "-f", str(NGINX), "-o", "json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ------------------------------------------------------------------ up / status / down / modify


def test_up_status_modify_down(kubeconfig, kube_emulator):  # noqa: F811
    proc = tycho(kubeconfig, "up", "-f", str(NGINX))
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()
    assert header == "{:<30} {:<35} {:<15} {:<7}".format("SERVICE", "GUID", "IP_ADDRESS", "PORT")
    service, guid = row.split()[:2]
    assert service == "nginx" and re.fullmatch(r"[0-9a-f]{32}", guid)
    [dep] = deployments(kube_emulator)
    assert dep["metadata"]["name"] == f"nginx-{guid}" and dep["metadata"]["labels"]["username"] == "renci"

    proc = tycho(kubeconfig, "status")
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.splitlines()
    # the original's widths, the first column grown to fit the name (nothing is cut)
    width = max(30, len(f"nginx-{guid}") + 2)
    assert header == "{:<{}} {:<35} {:<15} {:<7} {:<1}".format(
        "SYSTEM", width, "GUID", "IP_ADDRESS", "PORT", "CREATION_TIME")
    cells = row.split()
    assert cells[0] == f"nginx-{guid}" and cells[1] == guid  # names are not cut
    assert re.fullmatch(r"\d{1,2}-\d{1,2}-\d{4}", cells[4]) and re.fullmatch(r"\d{1,2}:\d{1,2}:\d{1,2}", cells[5])

    assert tycho(kubeconfig, "status", "--terse").stdout == guid + "\n"
    rows = json.loads(tycho(kubeconfig, "status", guid, "-o", "json").stdout)
    assert [r["sid"] for r in rows] == [guid] and rows[0]["username"] == "renci"
    rows = yaml.safe_load(tycho(kubeconfig, "status", "-o", "yaml").stdout)
    assert rows[0]["sid"] == guid
    assert tycho(kubeconfig, "status", "--username", "nobody").stdout == "None running\n"

    proc = tycho(kubeconfig, "modify", json.dumps({"tycho-guid": guid, "labels": {"tier": "gold"}, "cpu": "1"}))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["patches"]
    [dep] = deployments(kube_emulator)
    assert dep["spec"]["template"]["metadata"]["labels"]["tier"] == "gold"

    proc = tycho(kubeconfig, "down", guid)
    assert proc.returncode == 0 and proc.stdout == guid + "\n", proc.stderr
    assert deployments(kube_emulator) == []
    assert tycho(kubeconfig, "status").stdout == "None running\n"


def test_up_name_settings_namespace_and_kubeconfig_flag(tmp_path, kubeconfig, kube_emulator):  # noqa: F811
    settings = tmp_path / "s.env"
    settings.write_text("GREETING=hello\n")
    env = env_for(kubeconfig)
    del env["KUBECONFIG"]
    env["HOME"] = str(tmp_path)  # no ~/.kube/config to fall back on
    proc = subprocess.run([EXE, "--kubeconfig", str(kubeconfig), "--namespace", "team-a", "up", "-f", str(NGINX),
                           "-n", "web", "--settings", str(settings), "-o", "json"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["name"] == f"web-{result['sid']}"
    [dep] = deployments(kube_emulator, "team-a")
    env_vars = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_vars["GREETING"] == "hello"
    assert deployments(kube_emulator, "default") == []


def test_down_several_and_failures(kubeconfig, kube_emulator):  # noqa: F811
    a, b = up_json(kubeconfig)["sid"], up_json(kubeconfig)["sid"]
    proc = tycho(kubeconfig, "down", a, b)
    assert proc.returncode == 0 and proc.stdout.split() == [a, b]
    proc = tycho(kubeconfig, "down", "not a guid!")
    line = assert_one_line_error(proc)
    assert "not a guid!" in line


# ------------------------------------------------------------------ up --wait


def _wait_for_deployment(emu, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deps = deployments(emu)
        if deps:
            return deps[0]
        if proc.poll() is not None:
            raise AssertionError(f"tycho up exited early: {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError("no deployment appeared")


def _popen_up(kubeconfig, *extra):
    return subprocess.Popen([EXE, "up", "-f", str(NGINX), "--wait", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env_for(kubeconfig))


def test_up_wait_until_available(kubeconfig, kube_emulator, tmp_path):  # noqa: F811
    err_path = tmp_path / "up.err"
    with open(err_path, "w") as err_file:
        proc = subprocess.Popen([EXE, "up", "-f", str(NGINX), "--wait", "--timeout", "60"], stdout=subprocess.PIPE,
                                stderr=err_file, text=True, env=env_for(kubeconfig))
        dep = _wait_for_deployment(kube_emulator, proc)
        # The deployment becomes available only once `up` reported it waiting (however
        # long that takes on a busy machine), not after a fixed sleep.
        deadline = time.monotonic() + 60
        while "0/1 available" not in err_path.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        kube_emulator.set_deployment_status("default", dep["metadata"]["name"], pods=True)
        out, _ = proc.communicate(timeout=60)
    err = err_path.read_text()
    assert proc.returncode == 0, err
    assert "SERVICE" in out.splitlines()[0]
    assert "0/1 available" in err and f"{dep['metadata']['name']} is available" in err


def test_up_wait_times_out_with_reason(kubeconfig, kube_emulator):  # noqa: F811
    proc = tycho(kubeconfig, "up", "-f", str(NGINX), "--wait", "--timeout", "2")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tycho: error: system nginx-") and "not available after 2 s (timeout)" in last
    assert "tycho down" in last and "Traceback" not in proc.stderr


def _api(emu, method, path, body, content_type="application/json"):
    req = urllib.request.Request(emu.url + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _make_pod(emu, guid, status):
    name = f"pod-{guid[:8]}"
    _api(emu, "POST", "/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"tycho-guid": guid}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:does-not-exist"}]},
    })
    _api(emu, "PATCH", f"/api/v1/namespaces/default/pods/{name}/status", {"status": status},
         content_type="application/merge-patch+json")


@pytest.mark.parametrize("case", ["ImagePullBackOff", "CrashLoopBackOff"])
def test_up_wait_fails_fast_naming_the_reason(kubeconfig, kube_emulator, case):  # noqa: F811
    proc = _popen_up(kubeconfig, "--timeout", "60")
    dep = _wait_for_deployment(kube_emulator, proc)
    guid = dep["metadata"]["labels"]["tycho-guid"]
    _make_pod(kube_emulator, guid, {
        "phase": "Pending",
        "containerStatuses": [{"name": "nginx", "image": "nginx:does-not-exist", "imageID": "", "ready": False,
                               "restartCount": 0,
                               "state": {"waiting": {"reason": case, "message": f"simulated {case}"}}}],
    })
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("tycho: error: ") and case in last and f"simulated {case}" in last, err


def test_up_wait_unschedulable_named_at_timeout(kubeconfig, kube_emulator):  # noqa: F811
    proc = _popen_up(kubeconfig, "--timeout", "4")
    dep = _wait_for_deployment(kube_emulator, proc)
    guid = dep["metadata"]["labels"]["tycho-guid"]
    _make_pod(kube_emulator, guid, {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient cpu."}],
    })
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    last = err.strip().splitlines()[-1]
    assert "(timeout)" in last and "Unschedulable: 0/3 nodes are available: 3 Insufficient cpu." in last, err


# ------------------------------------------------------------------ errors and exit codes


def test_usage_errors_exit_2(kubeconfig):
    assert tycho(kubeconfig, "status", "--bogus").returncode == 2
    assert tycho(kubeconfig, "down").returncode == 2
    assert tycho(kubeconfig, "up").returncode == 2
    assert tycho(kubeconfig, "status", "-o", "xml").returncode == 2
    line = assert_one_line_error(tycho(kubeconfig, "modify", "{not json"), code=2)
    assert "not valid JSON" in line
    line = assert_one_line_error(tycho(kubeconfig, "modify", '{"labels": {}}'), code=2)
    assert "field 'tycho-guid' is required" in line
    assert tycho(kubeconfig, "--help").returncode == 0


def test_failures_are_one_line(tmp_path, kubeconfig):
    line = assert_one_line_error(tycho(kubeconfig, "up", "-f", str(tmp_path / "missing.yaml")))
    assert "missing.yaml" in line
    line = assert_one_line_error(tycho(kubeconfig, "--kubeconfig", str(tmp_path / "nope"), "status"))
    assert "--kubeconfig" in line
    # A cluster that does not answer.
    dead = tmp_path / "dead"
    dead.write_text(Path(kubeconfig).read_text().replace(re.search(r"http://127\.0\.0\.1:\d+",
                                                                   Path(kubeconfig).read_text()).group(0),
                                                         "http://127.0.0.1:9"))
    started = time.monotonic()
    proc = subprocess.run([EXE, "status"], capture_output=True, text=True, timeout=120,
                          env=dict(env_for(kubeconfig), KUBECONFIG=str(dead)))
    line = assert_one_line_error(proc)
    assert "127.0.0.1:9" in line or "connect" in line.lower()
    assert time.monotonic() - started < 60


def test_debug_shows_details(tmp_path, kubeconfig):
    proc = tycho(kubeconfig, "-d", "up", "-f", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 1 and "tycho: error (Input):" in proc.stderr


def test_help_lists_every_command():
    """`tycho --help` answers without a cluster and names every command and global flag.

    How fast it answers is measured by benches/import_bench.py, not asserted here: a timed
    assertion flakes on a busy machine.
    """
    proc = subprocess.run([EXE, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for command in ("up", "status", "down", "modify", "render", "api"):
        assert command in proc.stdout
    assert "--namespace" in proc.stdout and "--kubeconfig" in proc.stdout


# ------------------------------------------------------------------ kubectl conventions


def test_up_shows_the_service_port_as_status_does(kubeconfig, kube_emulator):  # noqa: F811
    proc = tycho(kubeconfig, "up", "-f", str(NGINX))
    assert proc.returncode == 0, proc.stderr
    service, guid, _ip, port = proc.stdout.splitlines()[1].split()
    [row] = json.loads(tycho(kubeconfig, "status", guid, "-o", "json").stdout)
    [svc] = [o for o in kube_emulator.objects() if o["kind"] == "Service"]
    assert port == str(row["port"]) == str(svc["spec"]["ports"][0]["port"]) == "80"


def test_output_name_and_wide(kubeconfig, kube_emulator):  # noqa: F811
    proc = tycho(kubeconfig, "up", "-f", str(NGINX), "-n", "a-rather-long-system-name-here", "-o", "name")
    assert proc.returncode == 0, proc.stderr
    guid = proc.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", guid)
    assert tycho(kubeconfig, "status", "-o", "name").stdout == guid + "\n"
    header, row = tycho(kubeconfig, "status", "-o", "wide").stdout.splitlines()
    assert header.split() == ["SYSTEM", "GUID", "APP_ID", "USERNAME", "IP_ADDRESS", "PORT", "READY",
                              "CREATION_TIME"]
    cells = row.split()
    assert cells[:4] == [f"a-rather-long-system-name-here-{guid}", guid, "a-rather-long-system-name-here", "renci"]
    # columns line up: the header's columns start where the row's do
    assert header.index("GUID") == row.index(guid, len(cells[0]))
    assert header.index("USERNAME") == row.index("renci")


def test_compose_from_stdin(kubeconfig, kube_emulator):  # noqa: F811
    text = NGINX.read_text()
    proc = subprocess.run([EXE, "render", "-f", "-", "--guid", "ab" * 16, "-o", "json"], input=text,
                          capture_output=True, text=True, timeout=60, env=env_for(kubeconfig))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["items"][0]["metadata"]["name"] == "system-" + "ab" * 16
    proc = subprocess.run([EXE, "up", "-f", "-", "-n", "piped", "-o", "json"], input=text,
                          capture_output=True, text=True, timeout=60, env=env_for(kubeconfig))
    assert proc.returncode == 0, proc.stderr
    [dep] = deployments(kube_emulator)
    assert dep["metadata"]["name"] == f"piped-{json.loads(proc.stdout)['sid']}"
    proc = subprocess.run([EXE, "modify", "-"], input=json.dumps({"tycho-guid": json.loads(proc.stdout)["sid"],
                                                                   "labels": {"tier": "gold"}}),
                          capture_output=True, text=True, timeout=60, env=env_for(kubeconfig))
    assert proc.returncode == 0, proc.stderr


def test_render_namespace_sets_metadata_namespace(kubeconfig):
    proc = tycho(kubeconfig, "--namespace", "team-b", "render", "-f", str(NGINX), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert {o["metadata"]["namespace"] for o in json.loads(proc.stdout)["items"]} == {"team-b"}


def test_dry_run_client_creates_nothing(kubeconfig, kube_emulator):  # noqa: F811
    kube_emulator.clear_requests()
    proc = tycho(kubeconfig, "up", "-f", str(NGINX), "--dry-run=client", "--guid", "cd" * 16)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"deployment.apps/nginx-{'cd' * 16} created (dry run)",
                                        f"service/nginx-{'cd' * 16} created (dry run)"]
    assert kube_emulator.objects() == []
    assert kube_emulator.requests() == []
    proc = tycho(kubeconfig, "up", "-f", str(NGINX), "--dry-run", "-o", "yaml")
    assert proc.returncode == 0 and [d["kind"] for d in yaml.safe_load_all(proc.stdout)] == ["Deployment", "Service"]


def test_dry_run_server_sends_every_write_with_dry_run_all(kubeconfig, kube_emulator):  # noqa: F811
    kube_emulator.clear_requests()
    proc = tycho(kubeconfig, "up", "-f", str(NGINX), "--dry-run=server", "-o", "name", "--guid", "ef" * 16)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"deployment.apps/nginx-{'ef' * 16}", f"service/nginx-{'ef' * 16}"]
    writes = [r for r in kube_emulator.requests() if r["method"] not in ("GET", "HEAD")]
    assert [r["method"] for r in writes] == ["POST", "POST"]
    assert all("dryRun=All" in r["query"] for r in writes), writes
    # The emulator (kube-fake-client) does not honour dryRun and stores the objects; a
    # real API server does not. What is asserted here is what tycho sends.


def test_unknown_guid_is_a_failure(kubeconfig, kube_emulator):  # noqa: F811
    missing = "f" * 32
    line = assert_one_line_error(tycho(kubeconfig, "down", missing))
    assert missing in line
    line = assert_one_line_error(tycho(kubeconfig, "status", missing))
    assert missing in line
    guid = up_json(kubeconfig)["sid"]
    proc = tycho(kubeconfig, "down", missing, guid)
    assert proc.returncode == 1 and proc.stdout == guid + "\n"
    assert deployments(kube_emulator) == []


@pytest.mark.parametrize("guid", ["a/b", "", "0123456789ABCDEF0123456789ABCDEF", "0" * 31, "g" * 32])
def test_invalid_guid_is_refused(kubeconfig, kube_emulator, guid):  # noqa: F811
    for command in ("render", "up"):
        line = assert_one_line_error(tycho(kubeconfig, command, "-f", str(NGINX), "--guid", guid))
        assert "--guid" in line
    assert kube_emulator.objects() == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_write_error_is_a_failure(kubeconfig, kube_emulator):  # noqa: F811
    with open("/dev/full", "w") as full:
        proc = subprocess.run([EXE, "render", "-f", str(NGINX)], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=60, env=env_for(kubeconfig))
    assert proc.returncode == 1 and "cannot write" in proc.stderr, proc.stderr
    up_json(kubeconfig)
    with open("/dev/full", "w") as full:
        proc = subprocess.run([EXE, "status"], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=60, env=env_for(kubeconfig))
    assert proc.returncode == 1 and "cannot write" in proc.stderr, proc.stderr


def test_a_server_that_never_answers_is_named(kubeconfig, tmp_path):
    """A listening socket that accepts and never answers: `waiting for <url> ...` on stderr
    while the command waits, then one error line naming the URL (within GIVE_UP_AFTER,
    12 s, of src/cli/connect.rs; not timed here)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        text = Path(kubeconfig).read_text()
        dead = tmp_path / "silent"
        dead.write_text(text.replace(re.search(r"http://127\.0\.0\.1:\d+", text).group(0), url))
        proc = subprocess.Popen([EXE, "status"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(env_for(kubeconfig), KUBECONFIG=str(dead)))
        try:
            first = proc.stderr.readline()
            assert first.strip() == f"tycho: waiting for {url} ...", first
            rest = proc.stderr.read()
            assert proc.wait(timeout=120) == 1
        finally:
            proc.kill()
            proc.wait()
    [line] = rest.strip().splitlines()
    assert line.startswith("tycho: error: ") and url in line, line
    assert proc.stdout.read() == ""
