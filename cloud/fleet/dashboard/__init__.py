"""The fleet dashboard: one read-only page: which agent has which site's certificate,
how long each has left, agents gone quiet, last errors, and the expiry timeline.

    app = make_app(lambda: collect(config, store, datetime.now(UTC)))

Routes: `/` the page (HTML, the timeline inline), `/status.json` the same read model as JSON,
`/timeline.svg` the timeline alone. Nothing is fetched from elsewhere: styles are inline and the
picture is drawn on the server, so the page works offline and under a strict
Content-Security-Policy. `certdrop dashboard` serves it locally;
`cloud.aws.handlers.dashboard` behind a Lambda function URL with IAM auth. Both answer only the
`Host` names it is served under (`hosts.py`: no DNS rebinding).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Response, jsonify, render_template
from jinja2 import StrictUndefined
from markupsafe import Markup

from cloud.errors import CertdropError
from cloud.fleet.dashboard import timeline, view
from cloud.fleet.status import FleetStatus

log = logging.getLogger(__name__)

# No script at all, styles only inline, images only from here (or inline).
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def make_app(load: Callable[[], FleetStatus]) -> Flask:
    """`load` is called once per request: the page always shows the store as it is now."""
    app = Flask(__name__)
    app.jinja_env.undefined = StrictUndefined  # a misspelt name fails instead of showing nothing
    app.jinja_env.globals.update(
        cell=view.cell,
        expiry=view.expiry_badge,
        health=view.health_badge,
        flags=view.agent_flags,
        problem=view.problem_badge,
        when=view.when,
        ago=view.ago,
        every=view.interval_text,
        persist_rows=view.persist_rows,
        summary=view.summary,
    )

    @app.get("/")
    def page() -> str:
        status = load()
        return render_template(
            "fleet.html",
            status=status,
            counts=view.counts(status),
            timeline=Markup(timeline.render(status)),  # built by ElementTree, escaped there
        )

    @app.get("/status.json")
    def status_json() -> Response:
        return jsonify(load().as_json())

    @app.get("/timeline.svg")
    def timeline_svg() -> Response:
        return Response(timeline.render(load()), mimetype="image/svg+xml")

    @app.errorhandler(CertdropError)
    def unreadable(exc: CertdropError) -> tuple[str, int]:
        log.error("the fleet could not be read: %s", exc)
        return render_template("unavailable.html", error=str(exc)), 503

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    return app
