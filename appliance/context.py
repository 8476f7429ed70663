"""Context variables that tie log lines and outbound calls to their cause."""

from __future__ import annotations

import contextvars

# The ID of the HTTP request this thread is serving; set by the request middleware.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None)

# The ID of the sync (or import) run this thread is working on.
run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
