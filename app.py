"""The web UI: a chat whose answers cite the passages they come from, and the library.

    python app.py [--host HOST] [--port PORT] [--data-dir DIR]

Opens http://127.0.0.1:7860 (RAG_HOST / RAG_PORT) on the embedded store. Login is
optional: RAG_AUTH=user:password[:role], several entries separated by commas, or the
path of a file with one entry a line (see web/auth.py). The page's parts live in
`web/` (service, layout, chat, api, render, export, auth, uploads, limits); this
file only reads the settings and starts it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from rag.settings import settings_from_args  # sets the offline, no-telemetry environment
from rag.store.articles import StoreError
from web.auth import load_users
from web.server import start
from web.service import NewsApp

logger = logging.getLogger("newsrag.app")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.split("\n")[0])
    parser.add_argument("--host", help="address to bind (default: RAG_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: RAG_PORT or 7860)")
    parser.add_argument("--data-dir", help="store folder (default: RAG_DATA_DIR or ./data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    started = time.perf_counter()
    try:
        settings = settings_from_args(host=args.host, port=args.port, data_dir=args.data_dir)
        users = load_users(settings.auth)
        app = NewsApp(settings)
    except (StoreError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    logger.info("News RAG on %s (%.1f s to open)", app.store.location,
                time.perf_counter() - started)
    start(app, settings.host, settings.port, users)


if __name__ == "__main__":
    main()
