"""Compiles a parity case (tests/support/cases.py) with ours, with exactly the case's
environment switches set (all others unset) for the duration of the call."""

import copy
import os

from run_oracle import SWITCHES
from tycho import _native

UID = "00000000-0000-4000-8000-000000000000"


def compile_case(case, **kw):
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k in SWITCHES}
    os.environ.update(case.get("environ", {}))
    try:
        return _native.compile_request(
            copy.deepcopy(case["request"]),
            ambassador=case.get("ambassador", False),
            deployment_uid=UID,
            missing_claims=list(case.get("missing_pvcs") or []),
            secret_env=list((case.get("env_secret") or {}).items()),
            **kw,
        )
    finally:
        for k in case.get("environ", {}):
            os.environ.pop(k, None)
        os.environ.update(saved)
