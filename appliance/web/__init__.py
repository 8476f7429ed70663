"""The HTTP side: the Bottle app factory, routes and middleware."""
