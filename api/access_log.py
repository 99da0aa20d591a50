"""uvicorn's access log without credentials or contact data: no query string (an email to look
up, a token) and no Temporal UI codec key, which is the credential in its path."""

from __future__ import annotations

import logging
import re

# uvicorn logs `'%s - "%s %s HTTP/%s" %d'`: client, method, path with query, version, status.
_PATH_ARG = 2
_CODEC_KEY = re.compile(r"(/codec/ui/)[^/]+")


def shown_path(path: str) -> str:
    """The path as the access log shows it: query dropped, codec key masked."""
    path = path.partition("?")[0]
    return _CODEC_KEY.sub(r"\1***", path)


class AccessLogFilter(logging.Filter):
    """Rewrites the path of each `uvicorn.access` line (docs/operations.md#metrics-and-logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG:
            path = args[_PATH_ARG]
            if isinstance(path, str):
                record.args = (*args[:_PATH_ARG], shown_path(path), *args[_PATH_ARG + 1 :])
        return True


def filter_access_log() -> None:
    """Install AccessLogFilter on uvicorn's access logger, once per process."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogFilter) for f in access.filters):
        access.addFilter(AccessLogFilter())
