"""Serving the page: the queue and its bounds, the login and its throttle, start-up."""

from __future__ import annotations

import logging
import threading
from typing import Any

import gradio as gr

from rag.settings import Settings, get_settings
from web.auth import LoginGuard, LoginThrottle, UploadGuard, User, bind_warning, checker, load_users
from web.mcp import McpRoutes, NewsMcp
from web.openai.api import OpenAIApi, OpenAIRoutes
from web.service import NewsApp
from web.ui.layout import CSS, HEAD, build

logger = logging.getLogger(__name__)


def launch(demo: gr.Blocks, host: str, port: int, users: dict[str, User] | None = None,
           settings: Settings | None = None, api: OpenAIApi | None = None,
           mcp: NewsMcp | None = None, **kwargs: Any) -> Any:
    """Start the server (blocking unless prevent_thread_lock=True); warns when it is
    reachable from other machines without a login. `api`: served under /v1; `mcp`: the
    MCP server, under /mcp (streamable HTTP, /v1's tokens)."""
    from starlette.middleware import Middleware

    settings = settings or get_settings()
    warning = bind_warning(host, port, users is not None)
    if warning:
        logger.warning(warning)
    middleware = [Middleware(OpenAIRoutes, api=api)] if api is not None else []
    if mcp is not None:
        middleware.append(Middleware(McpRoutes, mcp=mcp, host=host))
    if users:
        throttle = LoginThrottle(settings.login_max_failures, settings.login_window)
        middleware.append(Middleware(LoginGuard, throttle=throttle))
        middleware.append(Middleware(UploadGuard, users=users))
    # A full queue is refused by gradio itself: the page says "This application is
    # currently busy. Please try again.", gradio_client "Queue is full! Please try again."
    demo = demo.queue(default_concurrency_limit=1, max_size=settings.queue_max)
    return demo.launch(
        server_name=host, server_port=port, auth=checker(users) if users else None,
        auth_message="News RAG: log in to ask questions of the library." if users else None,
        css=CSS, head=HEAD, footer_links=["api"], run_history=False, show_error=False,
        max_file_size=settings.max_file_bytes, app_kwargs={"middleware": middleware},
        **kwargs,
    )


def start(app: NewsApp, host: str, port: int, users: dict[str, User] | str | None = None,
          block: bool = True) -> gr.Blocks:
    """Warm the engine up in the background, build the page and serve it. With
    `block=False` (tests) it returns at once; `demo.close()` stops the server.
    `users`: as `load_users` gives them, or the RAG_AUTH value itself. The
    OpenAI-compatible API (`web.openai.api`) is served beside the page, under /v1, and
    the MCP server (`web.mcp`) under /mcp, sharing its tokens and answer lanes; the
    feeds of the feeds file are followed in the background (`web.feeds`)."""
    app.users = load_users(users) if isinstance(users, str) else users

    threading.Thread(target=app.start_up, args=(True,), name="warm-up", daemon=True).start()
    demo = build(app)
    api = OpenAIApi(app)
    launch(demo, host, port, app.users, app.settings, api=api, mcp=NewsMcp(app, api),
           prevent_thread_lock=not block, quiet=not block)
    return demo
