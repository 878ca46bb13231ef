"""A minimal valid start request (one nginx service) for the compile tests, with any
top-level key replaced: ``base_request(env={...})``.

Used by test_validate_and_input.py, test_errors.py and test_hostile.py.
"""

import json


def base_request(**over):
    req = {
        "name": "nginx",
        "principal": json.dumps({"username": "jdoe", "host": "h.example.org"}),
        "serviceaccount": "default",
        "env": {},
        "system": {"services": {"nginx": {"image": "nginx:1.27", "ports": ["8080:80"]}}},
        "services": {"nginx": {"port": "80", "clients": []}},
    }
    req.update(over)
    return req
