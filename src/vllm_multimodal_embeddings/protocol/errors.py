"""Error bodies (kept for this import path): the transport reads them, so they live there."""

from ..transport._errors import parse_error_message

__all__ = ["parse_error_message"]
