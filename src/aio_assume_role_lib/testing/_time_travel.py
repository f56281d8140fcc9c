"""``time_travel()``: put a session's credentials in a refresh window without waiting."""

from __future__ import annotations

from typing import Any, Literal, get_args

from .._credentials import credentials_of
from .._refresh import Refresher

Window = Literal["advisory", "blocking", "expired"]
"""Where :func:`time_travel` puts the credentials:

- ``"advisory"``: the start of the advisory window. The next request starts one refresh in
  the background and is not delayed; it and the requests during the refresh are signed
  with the old credentials, later ones with the new.
- ``"blocking"``: the start of the blocking window (the last minute, or a tenth of short
  lifetimes). The next request waits for the refresh, then is signed with the new
  credentials, as every request is that comes while it runs.
- ``"expired"``: their expiry. As ``"blocking"``, except that if the refresh fails with an
  error retrying cannot fix (``AccessDenied``, say), callers get that error; other
  failures serve the expired credentials (static stability), counted in
  ``refresh_stats.served_expired``.
"""

WINDOWS: frozenset[str] = frozenset(get_args(Window))


def time_travel(session: Any, to: Window) -> float:
    """Move ``session``'s credentials to the start of a refresh window, without sleeping.

    The library's view of the cached credentials is moved, as if their time had passed:
    their expiry and both windows move earlier by the same amount. The credentials
    themselves do not change, so an endpoint still accepts them (the loopback STS, and
    AWS, judge expiry by their own clock); new credentials fetched after that have their
    own, unmoved timings. Nothing else is touched: backoff after a failure and remembered
    errors run on their own clock.

    Args:
        session: a session returned by ``assume_role()`` (an ``AioSession`` or an
            ``aioboto3.Session``) or its ``AssumeRoleCredentials``; its credentials must
            have been fetched (make one call first).
        to: ``"advisory"``, ``"blocking"`` or ``"expired"`` (see :data:`Window`).

    Returns:
        How many seconds the credentials were moved (negative if they were already past
        that point, and moved back to it).

    Raises:
        TypeError: ``session`` is not one whose credentials this library refreshes.
        ValueError: ``to`` is not a window, or nothing has been fetched yet.
    """
    if to not in WINDOWS:
        raise ValueError(
            f"time_travel(): to must be one of {', '.join(sorted(WINDOWS))}, not {to!r}"
        )
    refresher = getattr(session, "_refresher", None)
    if not isinstance(refresher, Refresher):
        credentials: Any = credentials_of(session, object)  # TypeError if not ours
        refresher = getattr(credentials, "_refresher", None)
    if not isinstance(refresher, Refresher):
        raise TypeError("time_travel(): these credentials are not refreshed by this library")
    return refresher._travel_to(to)
