"""The API reference at ``/docs``: plain HTML rendered from the OpenAPI document, with its one
stylesheet served from here, so it works offline (FastAPI's default pages load Swagger UI from
a CDN, and the Swagger UI that PyPI packages ship predates OpenAPI 3.1)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
h2{border-bottom:1px solid #ccc;margin-top:2rem}h3{font-family:monospace;font-size:1rem}
.m{display:inline-block;min-width:4rem;font-weight:bold}pre{background:#f5f5f5;padding:.5rem;
overflow:auto;font-size:13px}details{margin:.3rem 0 1rem 1rem}"""


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/docs")
    def page(request: Request) -> HTMLResponse:
        return HTMLResponse(render(request.app.openapi()))

    @routes.get("/docs/style.css")
    def style() -> Response:
        return Response(STYLE, media_type="text/css")

    return routes


def render(document: dict[str, Any]) -> str:
    info = document.get("info", {})
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(info.get('title', ''))}"
             "</title><link rel='stylesheet' href='/docs/style.css'></head><body>",
             f"<h1>{escape(info.get('title', ''))} {escape(info.get('version', ''))}</h1>",
             "<p>The machine-readable document: <a href='/openapi.json'>/openapi.json</a> "
             "(OpenAPI 3.1).</p>"]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            tag = (operation.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((method.upper(), path, operation))
    for tag, operations in by_tag.items():
        parts.append(f"<h2>{escape(tag)}</h2>")
        for method, path, operation in operations:
            parts.append(f"<h3><span class='m'>{method}</span>{escape(path)}</h3>"
                         f"<p>{escape(operation.get('summary', ''))}</p>")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body and body.get("schema"):
                parts.append(_schema_block("request body", body["schema"], document))
    parts.append("</body></html>")
    return "".join(parts)


def _schema_block(title: str, schema: dict[str, Any], document: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    name = ref.rsplit("/", 1)[-1] if ref else ""
    resolved = document.get("components", {}).get("schemas", {}).get(name, schema) if name else schema
    text = json.dumps(resolved, indent=2)
    return f"<details><summary>{escape(title)} {escape(name)}</summary><pre>{escape(text)}</pre></details>"
