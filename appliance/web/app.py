"""The Bottle app factory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bottle

from appliance.web import phone, setup

if TYPE_CHECKING:
    from appliance.runtime import Appliance


def create_app(appliance: "Appliance") -> bottle.Bottle:
    """Build the Bottle app with every route family registered on it."""
    app = bottle.Bottle(catchall=True)
    app.config["json.enable"] = False
    phone.register(app, appliance)
    setup.register(app, appliance)
    return app
