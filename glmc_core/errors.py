"""The one exception type users see.

Every mistake a user can make (a missing data set, an unknown preset, a corrupt
image, a bad flag) raises :class:`GLMCError` with a one-line message that names
the problem and what to do. The CLI prints it without a traceback and exits 2.
"""

from __future__ import annotations

import contextlib

__all__ = ["GLMCError", "DataNotFound", "DownloadFailed", "MAX_MESSAGE", "interrupts_deferred", "defer_interrupt"]

MAX_MESSAGE = 2000  # characters: a message quoting a file or a flag can never flood a terminal


class GLMCError(Exception):
    """A user-facing error whose message is a complete, one-line explanation."""

    def __init__(self, message: str):
        message = str(message)
        if message.startswith("Caught ") and "Original Traceback" in message:
            # Re-raised by a DataLoader from a worker process as cls("Caught ... Original Traceback ...: msg"):
            # keep the worker's own one-line message, not the traceback around it.
            last = message.rstrip().splitlines()[-1]
            message = last.split(": ", 1)[1] if ": " in last else last
        # Keep the message on one line whatever the caller wrote, and bounded in length.
        message = " ".join(message.split())
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 40] + f" … ({len(message) - MAX_MESSAGE + 40} characters cut)"
        super().__init__(message)


class DataNotFound(GLMCError):
    """The data set is not where the config says (a missing folder, zip or file): callers that know where a
    run's data were before (a resumed run) add that, by type, never by the message's wording.

    The message is ``"<what>; <fix>"``; ``what`` alone (what is missing) is kept for callers that say it in
    their own words (the notebooks' fallback to the offline digits)."""

    def __init__(self, what: str, fix: str = ""):
        super().__init__(f"{what}; {fix}" if fix else what)
        self.what = " ".join(str(what).split()) if fix else str(self)


class DownloadFailed(GLMCError):
    """A download failed (offline, refused, interrupted); ``cause`` is the underlying error in one short line."""

    def __init__(self, message: str, cause: str = ""):
        super().__init__(message)
        self.cause = " ".join(str(cause).split()) if cause else str(self)


# Ctrl-C and SIGTERM arriving while a checkpoint is written: the CLI's signal handler keeps the interrupt
# until the write (and the bookkeeping of which epoch it holds) is complete, then raises it.
_DEFER: dict = {"depth": 0, "pending": None}


@contextlib.contextmanager
def interrupts_deferred():
    """Within this block an interrupt delivered through :func:`defer_interrupt` waits for the block's end."""
    _DEFER["depth"] += 1
    try:
        yield
    finally:
        _DEFER["depth"] -= 1
    if _DEFER["depth"] == 0 and _DEFER["pending"] is not None:  # the block completed: now stop
        exc, _DEFER["pending"] = _DEFER["pending"], None
        raise exc


def defer_interrupt(exc: BaseException) -> bool:
    """For signal handlers: inside :func:`interrupts_deferred`, keep ``exc`` for its end and return True."""
    if _DEFER["depth"] > 0:
        _DEFER["pending"] = exc
        return True
    return False
