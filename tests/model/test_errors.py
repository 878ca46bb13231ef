"""Typed errors (issue 10): the exception names the field at fault (`exc.field`) and, for
a template error, the template and line (`exc.template`, `exc.line`), besides the
original's class and message."""

from __future__ import annotations

import json

import pytest
from start_requests import base_request
from tycho import _native
from tycho.exceptions import StartException, TychoException


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda r: r["system"]["services"]["nginx"].pop("image"), "system.services.nginx.image"),
        (lambda r: r["system"]["services"]["nginx"].update(ports=["80:http"]), "system.services.nginx.ports"),
        (lambda r: r["system"]["services"]["nginx"].update(volumes=["/data:/data"]),
         "system.services.nginx.volumes"),
        (lambda r: r["system"]["services"]["nginx"].update(deploy={"resources": {"limits": {"cpus": "lots"}}}),
         "system.services.nginx.deploy.resources.limits.cpus"),
        (lambda r: r["services"]["nginx"].update(clients=["10.0.0.300/8"]), "services.nginx.clients"),
        (lambda r: r.update(principal="{not json"), "principal"),
        (lambda r: r.update(principal=json.dumps({"host": "h"})), "principal.username"),
        (lambda r: r["system"].pop("services"), "system.services"),
    ],
)
def test_exception_names_the_field(mutate, field):
    req = base_request()
    mutate(req)
    with pytest.raises(TychoException) as err:
        _native.compile_request(req)
    assert err.value.field == field, str(err.value)
    # The message is the original's kind of message, unchanged.
    assert err.value.message == str(err.value)


def test_template_errors_keep_template_and_line(tmp_path):
    (tmp_path / "pod.yaml").write_text("a: 1\nb: {{ nope() }}\n")
    config = {"tycho": {"templates": {"paths": [str(tmp_path)]}}}
    with pytest.raises(TychoException) as err:
        _native.render_template("pod.yaml", {"system": {}}, config=config)
    e = err.value
    assert e.template and e.template.endswith("pod.yaml") and e.line == 2, (e.template, e.line, str(e))
    # As before, the message names the template too.
    assert "pod.yaml" in str(e)


def test_errors_without_a_field_say_none():
    with pytest.raises(TychoException) as err:
        _native.render_template("nope.yaml", {"system": {}})
    assert err.value.field is None and err.value.line is None
    # Raised from Python, the attributes exist too.
    assert StartException("x").field is None
