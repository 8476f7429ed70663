"""Phone routes: the Cisco XML directory."""

from __future__ import annotations

import bottle


def register(app: bottle.Bottle, appliance) -> None:
    @app.get("/directory")
    def directory_menu():
        bottle.response.content_type = "text/xml; charset=utf-8"
        return "<CiscoIPPhoneMenu><Title>Directory</Title></CiscoIPPhoneMenu>"
