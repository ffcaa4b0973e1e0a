"""API routers, one module per capability; :data:`lab.api.main.ROUTERS` includes them, in order."""
