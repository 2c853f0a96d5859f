"""Resumable HTTP(S) download of one file, with retries and a progress bar.

:func:`fetch` knows nothing about what it downloads:

* The body is streamed to ``<path>.part``.  A part file left over from an
  earlier attempt is continued with an HTTP ``Range: bytes=N-`` request; a
  server that answers ``200`` instead of ``206`` makes the download start again
  from byte zero, a ``416`` whose ``Content-Range`` total equals the part's
  size means the part is already complete.
* Transient failures (connection reset, truncated body, time-out, HTTP 5xx,
  408, 429) are retried with a short, growing pause, each retry continuing
  where the last one stopped.  Failures that mean "no network" (name
  resolution, connection refused, unreachable host, other HTTP errors) end the
  attempt at once with a one-line :class:`NetworkError`.
* The finished part is renamed to ``path`` with :func:`os.replace`, so ``path``
  only ever holds a complete file.  Checking its digest is the caller's job: the
  archive is hashed while it is unpacked (:mod:`pixel_evidence.data.archive`), which
  saves a second read of a file that can be gigabytes.

Only the standard library and :mod:`tqdm` are used.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

__all__ = ["RETRY_BACKOFF", "DownloadError", "NetworkError", "fetch"]

#: Pause before retry ``k`` (1-based) is ``RETRY_BACKOFF * 2 ** (k - 1)``
#: seconds, capped at 10 s.  Tests set it to 0.
RETRY_BACKOFF = 0.5

_CHUNK = 256 * 1024
_USER_AGENT = "pixel-evidence-downloader/0.1 (+python-urllib)"


class DownloadError(RuntimeError):
    """A download did not produce a usable file.

    ``str(error)`` is always a single line meant to be shown to the user.
    """

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))


class NetworkError(DownloadError):
    """The URL could not be fetched: no network, an HTTP error, or retries used up."""


class _Transient(Exception):
    """Internal: a failure worth retrying (the part file is kept)."""


class _Offline(Exception):
    """Internal: a failure that retrying will not fix."""


def fetch(
    url: str,
    path: Path,
    *,
    retries: int = 3,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``path`` (its folder is created); return ``path``.

    Args:
        url: ``http://`` or ``https://`` URL.
        path: Where the file goes.  An existing ``path`` is complete (it is only
            ever renamed into place whole) and is kept without network access.
        retries: How many times a transient failure is retried, each retry
            resuming (>= 0).  Default 3.
        timeout: Socket time-out in seconds for connecting and for each read.  Default 30.
        progress: Show a tqdm byte progress bar on stderr.  Default True.

    Raises:
        NetworkError: the file could not be fetched; ``<path>.part`` is kept for the next attempt.
    """
    path = Path(path)
    if path.exists():
        return path

    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        _fill_part(url, part, retries=retries, timeout=timeout, progress=progress, label=path.name)
    except (_Offline, _Transient) as exc:
        raise NetworkError(f"could not download {url} ({exc})") from exc
    os.replace(part, path)
    return path


def _fill_part(url: str, part: Path, *, retries: int, timeout: float, progress: bool, label: str) -> None:
    """Fill ``part`` with the full body of ``url``, retrying transient errors."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https"):
        raise _Offline(f"unsupported URL scheme {parsed.scheme!r}; use http or https")

    # A fresh opener every call so proxy settings in the environment are read now.
    opener = urllib.request.build_opener()
    failures = 0
    while True:
        try:
            _fetch_once(opener, url, part, timeout, progress, label)
            return
        except _Transient as exc:
            failures += 1
            if failures > retries:
                raise _Offline(f"{exc}; gave up after {failures} attempt{'s' if failures != 1 else ''}") from exc
            _backoff(failures)


def _fetch_once(
    opener: urllib.request.OpenerDirector, url: str, part: Path, timeout: float, progress: bool, label: str
) -> None:
    """One HTTP request that appends to (or restarts) ``part``.

    Returns normally only when the part file holds the complete body.
    Raises ``_Transient`` / ``_Offline`` (wrapping the cause) otherwise.
    """
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")

    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # Range not satisfiable: either we already have everything, or the
            # part file is longer than the remote file.
            _, total = _parse_content_range(exc.headers.get("Content-Range") if exc.headers else None)
            if total is not None and total == offset:
                return
            part.unlink(missing_ok=True)
            raise _Transient("server rejected the resume offset; starting over") from exc
        raise _classify(exc)(_describe_reason(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - classified below
        raise _classify(exc)(_describe_reason(exc)) from exc

    with response:
        status = getattr(response, "status", None) or response.getcode()
        content_type = (response.headers.get("Content-Type") or "").lower()
        if content_type.startswith("text/html"):
            raise _Offline("server sent an HTML page instead of the file: the link has expired or needs a browser")

        if status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"server resumed at byte {start} instead of {offset}; starting over")
            if total is None:
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length and length.isdigit() else None
            mode = "ab"
        elif status == 200:
            offset = 0  # server ignored Range (or none was sent): rewrite from scratch
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        else:
            raise _Offline(f"unexpected HTTP status {status}")

        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            disable=not progress,
            leave=True,
        )
        try:
            with open(part, mode) as fh:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except Exception as exc:  # noqa: BLE001 - classified below
                        raise _classify(exc)(_describe_reason(exc)) from exc
                    if not chunk:
                        break
                    fh.write(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()

    size = part.stat().st_size
    if total is not None:
        if size < total:
            raise _Transient(f"connection closed after {size} of {total} bytes")
        if size > total:
            part.unlink(missing_ok=True)
            raise _Transient(f"received {size} bytes but expected {total}; starting over")


def _backoff(attempt: int) -> None:
    delay = min(RETRY_BACKOFF * (2 ** (attempt - 1)), 10.0)
    if delay > 0:
        time.sleep(delay)


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``"bytes 10-99/100"`` -> ``(10, 100)``; ``"bytes */100"`` -> ``(None, 100)``."""
    if not value:
        return None, None
    match = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", value, re.IGNORECASE)
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _describe_reason(exc: BaseException) -> str:
    """Short human text for a network exception."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, socket.gaierror):
            return f"cannot resolve host: {reason.strerror or reason}"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return "timed out"
        if isinstance(reason, OSError) and reason.strerror:
            return reason.strerror
        return str(reason)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _classify(exc: BaseException) -> type[Exception]:
    """Map a raised exception to ``_Transient`` or ``_Offline``."""
    if isinstance(exc, urllib.error.HTTPError):
        return _Transient if 500 <= exc.code < 600 or exc.code in (408, 429) else _Offline
    if isinstance(exc, http.client.InvalidURL):
        return _Offline
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError, ConnectionResetError, ConnectionAbortedError)):
            return _Transient
        if isinstance(reason, http.client.RemoteDisconnected):
            return _Transient
        return _Offline  # DNS failure, refused, unreachable, bad scheme ...
    if isinstance(exc, (socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException)):
        return _Transient
    if isinstance(exc, OSError):
        return _Transient
    return _Offline
