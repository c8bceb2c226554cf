"""The web app's parts; `app.py` wires them (see docs/architecture.md)."""
