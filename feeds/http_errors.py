"""The one place where errors become HTTP responses."""

from __future__ import annotations

import logging

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .errors import FeedsError, IncompleteRender, NotFound, Unavailable

log = logging.getLogger(__name__)
#: Unavailable is passing: a damaged index is rebuilt, a first build finishes.
RETRY = {"Retry-After": "5", "Cache-Control": "no-store"}


def init_app(app: Flask) -> None:
    app.register_error_handler(NotFound, not_found)
    app.register_error_handler(Unavailable, unavailable)
    app.register_error_handler(IncompleteRender, incomplete)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(FeedsError, feeds_error)


def not_found(error: NotFound) -> tuple[str, int]:
    return render_template("error.html", status=404, message=str(error)), 404


def unavailable(error: Unavailable) -> tuple[str, int, dict[str, str]]:
    log.warning("503: %s", error)
    return render_template("error.html", status=503, message=str(error)), 503, RETRY


def incomplete(error: IncompleteRender) -> tuple[str, int, dict[str, str]]:
    # A document short of an item is never sent; the next try renders it afresh.
    log.error("%s", error)
    return render_template("error.html", status=503, message="The feed could not be written; try again."), 503, RETRY


def http_error(error: HTTPException) -> Response | tuple[str, int]:
    if error.code is None or error.code < 400:
        return error.get_response()
    response = error.get_response()
    response.set_data(render_template("error.html", status=error.code, message=error.description or error.name))
    response.content_type = "text/html; charset=utf-8"
    return response


def feeds_error(error: FeedsError) -> tuple[str, int]:
    log.error("%s", error)
    return render_template("error.html", status=500, message="The publisher could not answer."), 500
