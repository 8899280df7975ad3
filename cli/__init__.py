"""The ``seasoned`` command (``main``: the typer ``app``) and its terminal views: live progress of a run
(``progress``) and recorded runs (``views``). Thin: it parses arguments and calls the Python API."""

from .main import app, main, quiet_third_party

__all__ = ["app", "main", "quiet_third_party"]
