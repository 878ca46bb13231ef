"""End to end: tycho's KubernetesCompute (start / status / modify / delete)
against the kube emulator, with whatever `tycho` package is importable.

Verified with the original tycho-api 1.17.3 + kubernetes 25.3.0 in a
throwaway venv:

    python -m venv /tmp/v && /tmp/v/bin/pip install tycho-api==1.17.3
    /tmp/v/bin/python tests/kube-emulator/e2e_tycho.py [--json OUT]

``--json OUT`` writes a transcript (results, request log, stored objects
with volatile fields and the random system GUID replaced) for differential
comparison with another implementation.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))

from kube_emulator import Emulator  # noqa: E402

COMPOSE = {"version": "3", "services": {"jupyter-ds": {
    "image": "heliumdatastage/jupyter-datascience:v0.0.3",
    "entrypoint": ["start.sh", "jupyter", "lab"],
    "ports": ["8888:8888"],
    "deploy": {"resources": {"limits": {"cpus": "1", "memory": "1G"}}}}}}


def _scrub(value, guid):
    text = json.dumps(value, sort_keys=True, default=str)
    return json.loads(text.replace(guid, "<GUID>")) if guid else json.loads(text)


def run(emu, workdir):
    os.environ["KUBECONFIG"] = emu.write_kubeconfig(os.path.join(workdir, "kubeconfig"))
    os.environ.pop("KUBERNETES_SERVICE_HOST", None)
    os.environ["NAMESPACE"] = "default"
    import tycho
    from tycho.core import Tycho

    conf = os.path.join(os.path.dirname(tycho.__file__), "conf", "tycho.yaml")
    t = Tycho(config=conf) if os.path.exists(conf) else Tycho()
    system = t.parse({"name": "jupyter-ds", "principal": json.dumps({"username": "alice"}),
                      "system": COMPOSE, "env": {}, "services": {"jupyter-ds": {"port": "8888"}}})
    compute = t.get_compute()
    out = {}
    emu.clear_requests()
    out["start"] = compute.start(system)
    guid = out["start"]["sid"]
    out["start_requests"] = [(r["method"], r["path"], r["query"]) for r in emu.requests()]
    out["objects_after_start"] = emu.objects(strip_volatile=True)
    out["status_before_ready"] = compute.status(guid)
    assert [s["is_ready"] for s in out["status_before_ready"]] == [False]
    emu.set_deployment_status("default", out["status_before_ready"][0]["name"], pods=True)
    out["status_after_ready"] = compute.status(guid)
    assert [s["is_ready"] for s in out["status_after_ready"]] == [True]
    out["modify"] = compute.modify(t.parse_modify(
        {"tycho-guid": guid, "labels": {"x": "y"}, "cpu": "2", "memory": "3G"}))
    out["status_after_modify"] = compute.status(guid)
    assert out["status_after_modify"][0]["utilization"] == {"jupyter-ds": {"cpu": "2", "memory": "3G"}}
    out["objects_after_modify"] = emu.objects(strip_volatile=True)
    emu.clear_requests()
    out["delete"] = compute.delete(guid)
    out["delete_requests"] = [(r["method"], r["path"], r["query"]) for r in emu.requests()]
    out["objects_after_delete"] = emu.objects(strip_volatile=True)
    assert out["objects_after_delete"] == [], out["objects_after_delete"]
    for row in out["status_before_ready"] + out["status_after_ready"] + out["status_after_modify"]:
        row.pop("creation_time", None)
    return _scrub(out, guid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", help="write the transcript here")
    args = ap.parse_args()
    import tempfile
    with tempfile.TemporaryDirectory() as d, Emulator() as emu:
        out = run(emu, d)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, sort_keys=True)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
