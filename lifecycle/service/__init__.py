"""The HTTP API (issue #16): a FastAPI app over the public API, as the CLI is a click one.

    import lifecycle, lifecycle.service, uvicorn
    uvicorn.run(lifecycle.service.create_app(lifecycle.open("sqlite:///shop.db")))

or ``lifecycle serve``, whose workers each call `app_from_environment`. docs/service.md
describes the endpoints, authentication and the errors.
"""

from __future__ import annotations

from lifecycle.service.app import app_from_environment, create_app

FACTORY = "lifecycle.service:app_from_environment"

__all__ = ["FACTORY", "app_from_environment", "create_app"]
