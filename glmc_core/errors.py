"""The one exception type users see.

Every mistake a user can make (a missing data set, an unknown preset, a corrupt
image, a bad flag) raises :class:`GLMCError` with a one-line message that names
the problem and what to do. The CLI prints it without a traceback and exits 2.
"""

from __future__ import annotations

__all__ = ["GLMCError"]


class GLMCError(Exception):
    """A user-facing error whose message is a complete, one-line explanation."""

    def __init__(self, message: str):
        # Keep the message on one line whatever the caller wrote.
        super().__init__(" ".join(str(message).split()))
