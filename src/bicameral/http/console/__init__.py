"""The web console at ``/console``: a live view of every service for admins (see
``docs/operations.md``), served by query-api processes."""

from bicameral.http.console.routes import console_router

__all__ = ["console_router"]
