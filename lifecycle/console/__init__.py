"""The operator's web console (issue #19): server-rendered pages over the public API, served by
``lifecycle serve`` under ``/console``.

    import lifecycle, lifecycle.console
    app.mount("/console", lifecycle.console.create_console(engine))

Search orders, sellers and disputes; an aggregate's page (its state on the machine's diagram,
its timeline, deadlines with the time left, ledger balances, and the triggers the operator may
fire, with a form per payload and a confirmation step); the parked deadlines with retry; the
simulation runs the database holds and their reports. No CDN: the CSS and the little JS are
served from the package. Operators sign in with an operator API key (`lifecycle.console.auth`);
docs/console.md has the rest.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

import lifecycle
from lifecycle.console import auth, pages, present

STATIC = Path(__file__).parent / "static"


def create_console(engine: lifecycle.Engine) -> FastAPI:
    """The console's app over ``engine``, to mount under a path (``/console``)."""
    app = FastAPI(title="lifecycle console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.router.routes.extend(pages.router().routes)
    app.add_exception_handler(auth.SignInNeeded, _sign_in)
    app.add_exception_handler(auth.CsrfRefused, _csrf)
    app.add_exception_handler(pages.BadForm, _bad_form)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(lifecycle.LifecycleError, _lifecycle)
    return app


async def _sign_in(request: Request, error: Exception) -> Response:
    reason = error.reason if isinstance(error, auth.SignInNeeded) else ""
    if request.method == "GET":
        target = f"{pages.base_of(request)}/login"
        if reason:
            from urllib.parse import urlencode
            target += "?" + urlencode({"reason": reason})
        return RedirectResponse(target, status_code=303)
    return pages.render(request, "error.html", 401, title="Sign in first",
                        message="sign in with an operator API key first: nothing was changed")


async def _csrf(request: Request, error: Exception) -> Response:
    return pages.render(request, "error.html", 403, title="Refused",
                        message="the form's CSRF token is missing or not this session's: "
                                "nothing was changed (reload the page and try again)")


async def _bad_form(request: Request, error: Exception) -> Response:
    return pages.render(request, "error.html", 400, title="Bad form",
                        message=f"{error}: nothing was changed")


async def _http(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    message = "no such page in the console" if status == 404 else str(getattr(error, "detail", ""))
    return pages.render(request, "error.html", status, title="Not found" if status == 404 else "Error",
                        message=message)


async def _invalid(request: Request, error: Exception) -> Response:
    problems = error.errors() if isinstance(error, RequestValidationError) else []
    fields = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) or "request" for e in problems)
    return pages.render(request, "error.html", 400, title="Bad request",
                        message=f"invalid {fields or 'request'}: nothing was changed")


async def _lifecycle(request: Request, error: Exception) -> HTMLResponse:
    status = pages.status_of(error)
    return pages.render(request, "error.html", status, title="Refused",
                        message=present.one_line(error))


__all__ = ["create_console"]
