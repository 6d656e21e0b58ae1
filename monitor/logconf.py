"""Logging setup: structlog and stdlib logging rendered alike to one stream.

This is the only module that calls `structlog.configure`. Modules log with
`structlog.get_logger(__name__)`; third-party libraries (kafka-python) log through stdlib
`logging`. Both end in one `logging.StreamHandler` whose `structlog.stdlib.ProcessorFormatter`
adds an ISO-8601 UTC `timestamp`, `level` and `logger`, and renders either one JSON object per
line or a human console line.

The structlog processor chain is the same for every call, so loggers cached on first use stay
valid; everything `configure_logging` varies (renderer, stream, levels) lives in stdlib objects
that are replaced in place. Calling it again replaces the previous handler: it is idempotent.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog
from structlog.typing import Processor

__all__ = ["LOG_LEVELS", "configure_logging", "resolve_format"]

LOG_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_FORMATS = ("auto", "json", "console")

# Pre-processing shared by structlog events and foreign (stdlib) records.
_SHARED: tuple[Processor, ...] = (
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
)


class _DriftmonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler `configure_logging` owns (marked by type so it can be replaced)."""


def resolve_format(fmt: str, stream: TextIO) -> Literal["json", "console"]:
    """`json`/`console` as given; `auto` is console on a TTY and JSON otherwise."""
    if fmt not in _FORMATS:
        raise ValueError(f"log format must be one of {', '.join(_FORMATS)}, got {fmt!r}")
    if fmt == "auto":
        return "console" if _isatty(stream) else "json"
    return "json" if fmt == "json" else "console"


def _isatty(stream: TextIO) -> bool:
    """Whether the stream is a terminal; closed or odd streams count as not."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _renderer_chain(fmt: Literal["json", "console"], stream: TextIO) -> list[Processor]:
    """The final processors of the formatter: exception formatting and the renderer."""
    if fmt == "json":
        return [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Frame locals are never rendered: they may hold revealed secrets (Kafka kwargs).
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False, use_rich=False)
            ),
            structlog.processors.JSONRenderer(sort_keys=False),
        ]
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.dev.ConsoleRenderer(
            colors=_isatty(stream), exception_formatter=structlog.dev.plain_traceback
        ),
    ]


def configure_logging(
    level: str,
    fmt: str,
    stream: TextIO | None = None,
    *,
    kafka_level: str = "warning",
) -> None:
    """Route structlog and stdlib logging to `stream` (default: `sys.stderr`) at `level`.

    `fmt` is `json`, `console` or `auto` (see `resolve_format`). The `kafka` stdlib logger
    (kafka-python) is held at `kafka_level` or `level`, whichever is more severe, because its
    INFO output is per-connection chatter. Python warnings are captured into logging.
    Idempotent: a second call replaces the handler installed by the first.
    """
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    if kafka_level not in LOG_LEVELS:
        raise ValueError(f"kafka log level must be one of {', '.join(LOG_LEVELS)}")
    out = sys.stderr if stream is None else stream
    rendered = resolve_format(fmt, out)

    handler = _DriftmonHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=list(_SHARED),
            processors=_renderer_chain(rendered, out),
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _DriftmonHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LOG_LEVELS[level])
    logging.getLogger("kafka").setLevel(max(LOG_LEVELS[kafka_level], LOG_LEVELS[level]))
    logging.captureWarnings(True)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
