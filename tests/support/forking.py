"""Runs a function in a forked child process, as a gunicorn worker would."""

import json
import os
import time


def run_in_child(fn, timeout=60):
    """Runs ``fn`` in a forked child; returns what it returned (JSON) or raises."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            out = json.dumps({"ok": fn()})
            code = 0
        except BaseException as e:  # noqa: B036 - report anything to the parent
            out = json.dumps({"error": f"{type(e).__name__}: {e}"})
        try:
            os.write(write_end, out.encode())
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise AssertionError("the forked child hung (the parent's runtime or client was reused?)")
    with os.fdopen(read_end) as f:
        text = f.read()
    answer = json.loads(text) if text else {"error": "no answer"}
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, answer
    return answer["ok"]
