"""What the service tests (``tests/serve/``) share besides fixtures: waiting for readiness, checking the error
shape (importable as ``serve_helpers``)."""

from __future__ import annotations

import time

READY_SECONDS = 120  # loading three runs and warming them up on a busy 2-core machine


def wait_ready(get, seconds: float = READY_SECONDS) -> None:
    """Poll ``get("/readyz")`` every 0.1 s until it answers 200; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = get("/readyz").status_code
        if status == 200:
            return
        assert status == 503, status
        time.sleep(0.1)
    raise AssertionError(f"/readyz did not answer 200 within {seconds} s")


def assert_error(response, status: int, code: str | None = None, fragment: str = "") -> dict:
    """The service's error shape: ``status``, ``{"error": {"code", "message"}}``, the message one line."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert "\n" not in body["error"]["message"] and body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    assert fragment in body["error"]["message"], body
    return body["error"]
