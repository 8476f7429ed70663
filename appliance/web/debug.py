"""The admin-only /debug/profile route, present only when profiling is enabled.

The admin login guards it, and the access middleware lets only ``[admin] allow``
networks reach ``/debug`` at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import bottle

from appliance.profiling import ProfileBusy, Sampler, render_stack_profile

if TYPE_CHECKING:
    from appliance.runtime import Appliance


def _text(body: str, status: int = 200) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(body, status=status, headers={
        "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})


def parse_seconds(text: str, maximum: int) -> int:
    """Parse the ``seconds`` parameter; raise ValueError with a message for the client."""
    try:
        seconds = int(text)
    except ValueError:
        raise ValueError(f"invalid seconds {text[:20]!r}: expected a whole number from 1 "
                         f"to {maximum}, such as 10") from None
    if not 1 <= seconds <= maximum:
        raise ValueError(f"invalid seconds {seconds}: expected a whole number from 1 to "
                         f"{maximum} ([profiling] max_profile_seconds), such as 10")
    return seconds


def register(app: bottle.Bottle, appliance: "Appliance") -> None:
    """Add /debug/profile when ``[profiling] enabled`` is on."""
    settings = appliance.config.profiling
    if not settings.enabled:
        return
    sampler = Sampler(settings.sample_interval_ms / 1000, settings.max_profile_seconds)

    @app.get("/debug/profile")
    @appliance.admin_auth.require
    def debug_profile():
        request = bottle.request
        try:
            seconds = parse_seconds(request.query.get("seconds", "10"), sampler.max_seconds)
        except ValueError as error:
            return _text(f"{error}\n", 400)
        try:
            profile = sampler.run(seconds, request.environ.get("REMOTE_ADDR", ""))
        except ProfileBusy:
            return _text("conflict: another profile is running; try again when it ends\n", 409)
        top_text = request.query.get("top", "")
        top = min(int(top_text), 200) if top_text.isdigit() and int(top_text) > 0 else 30
        return _text(render_stack_profile(profile, top))
