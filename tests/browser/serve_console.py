"""Serve the API with the console on 127.0.0.1 for the browser suite, like ``chalice local``.

Used only when ``devtools.stack`` is not available or the app does not register the console
yet: the suite then runs this file in a child process (so the server's store configuration never
touches the test process) against the session's DynamoDB Local. The environment carries the
endpoint, table prefix and admin key; ``--create-tables`` creates the tables from the models first.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--create-tables", action="store_true")
    args = parser.parse_args()

    from chalice.config import Config
    from chalice.local import create_local_server

    from app import app
    from chalicelib.api import console
    from chalicelib.store import models

    if "/console" not in app.routes:
        app.register_blueprint(console.bp)
    if args.create_tables:
        models.create_tables()
    config = Config.create(chalice_stage="dev", app_name="sluice", chalice_app=app)
    create_local_server(app, config, "127.0.0.1", args.port).serve_forever()


if __name__ == "__main__":
    main()
