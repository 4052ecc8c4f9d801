"""Keeping secrets out of logs, error strings and API answers.

A ``Redactor`` masks, in any text:

- the password of a URL (``scheme://user:***@host``), whatever the scheme (DSNs, Redis URLs);
- ``Bearer`` tokens, ``sk-...``-like provider keys, tablerouter's ``trk_...`` keys, and
  ``password=`` / ``api_key:`` pairs;
- the configured secret values themselves (``secrets_of(settings)``: source URLs, the store's
  URL, the Redis URL, the LM and embedding keys, the admin API key), wherever they appear,
  however echoed.

Error strings that reach clients (a source's ``last_error``, a degraded route's reason, the
route log) pass through the redactor where they are made; ``RedactingFilter`` does the same for
every log record at the handlers (message, arguments, exception text and stack), so a
driver's exception that names a DSN is masked before any handler writes it.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote, urlsplit

from app.settings import Settings

__all__ = ["MASK", "RedactingFilter", "Redactor", "redacting_logs", "secrets_of", "url_secrets"]

MASK = "***"
# A secret shorter than this is not masked by value (it would mask ordinary words); the
# patterns still catch it where it has a recognisable shape (URL password, key=value).
MIN_SECRET_CHARS = 4

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://user:***@host (user may be empty, as in redis://:pw@)
    (re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^:/@\s'\"]*:)[^@\s'\"]+@"), rf"\g<head>{MASK}@"),
    (re.compile(r"(?i)\b(bearer\s+)[\w.~+/=-]{6,}"), rf"\1{MASK}"),
    # OpenAI-style keys (sk-..., sk-proj-...) as providers echo them in error bodies.
    (re.compile(r"\bsk-[\w-]{6,}"), f"sk-{MASK}"),
    # tablerouter's own API keys (app.auth.keys), should one be pasted into a question or a log.
    (re.compile(r"\btrk_[\w-]{20,}"), f"trk_{MASK}"),
    # password=..., api_key: "...", token=... (libpq DSN pairs, query strings, JSON bodies).
    (
        re.compile(
            r"(?i)\b((?:password|passwd|pwd|api[_-]?key|secret|token|access[_-]?key)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"
        ),
        rf"\1{MASK}",
    ),
)


class Redactor:
    """Masks secret values and secret-shaped text in strings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if len(s) >= MIN_SECRET_CHARS}
        # Longest first, so a URL is masked whole before the password inside it.
        self._values = sorted(values, key=len, reverse=True)
        self._value_pattern = (
            re.compile("|".join(re.escape(v) for v in self._values)) if self._values else None
        )

    def __call__(self, text: str) -> str:
        """``text`` with every secret masked."""
        if self._value_pattern is not None:
            text = self._value_pattern.sub(MASK, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


def url_secrets(url: str) -> list[str]:
    """A URL and its password (raw and percent-decoded), when it has one."""
    try:
        password = urlsplit(url).password
    except ValueError:  # not a URL we can parse: mask it whole
        return [url]
    if not password:
        return []
    return [url, password, unquote(password)]


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value the settings hold: URL passwords (and URLs with them), API keys."""
    found: list[str] = []
    for source in settings.sources.values():
        found += url_secrets(source.url.get_secret_value())
    found += url_secrets(settings.database_url.get_secret_value())
    if settings.redis_url is not None:
        found += url_secrets(settings.redis_url.get_secret_value())
    for key in (settings.llm_api_key, settings.embedding_api_key, settings.admin_key):
        if key is not None and key.get_secret_value():
            found.append(key.get_secret_value())
    return found


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, exception text and stack before handlers format it."""

    def __init__(self, redactor: Redactor | None = None, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.redactor = redactor or Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the handler reports it (handleError), as without us
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatters print exc_text when set instead of formatting exc_info again.
            record.exc_text = redact(record.exc_text or logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# uvicorn's loggers may carry their own handlers (its default config) instead of propagating.
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _handlers() -> list[logging.Handler]:
    handlers = list(logging.getLogger().handlers)
    for name in _SERVER_LOGGERS:
        handlers += logging.getLogger(name).handlers
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    return list(dict.fromkeys(handlers))


@contextlib.contextmanager
def redacting_logs(redactor: Redactor) -> Iterator[RedactingFilter]:
    """Install a redacting filter on the root's (and uvicorn's) handlers until the block ends.

    Handler filters see every record that reaches the handler, propagated ones included
    (a logger's own filters would not).
    """
    installed = RedactingFilter(redactor)
    handlers = _handlers()
    for handler in handlers:
        handler.addFilter(installed)
    try:
        yield installed
    finally:
        for handler in handlers:
            handler.removeFilter(installed)
