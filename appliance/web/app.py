"""The Bottle app factory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bottle

from appliance.web import admin, debug, errors, health, metrics, phone, setup

if TYPE_CHECKING:
    from appliance.runtime import Appliance


def create_app(appliance: "Appliance") -> bottle.Bottle:
    """Build the Bottle app with every route family registered on it."""
    app = bottle.Bottle()
    app.config["json.enable"] = False
    errors.install(app)
    phone.register(app, appliance)
    health.register(app, appliance)
    metrics.register(app, appliance)
    debug.register(app, appliance)
    setup.register(app, appliance)
    admin.register(app, appliance)
    return app
