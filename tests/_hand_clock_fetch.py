"""A child's real fetch path under a hand-driven refresher.

:func:`hand_clock_child` builds what ``assume_role`` builds for one child (the
``AssumeRoleFetcher`` on the parent's STS client table, its cache, its MFA code source)
but gives the refresher a :class:`ManualClock`: a try's deadline, the MFA code's allowance
and every pause come only when the test advances the clock. The requests themselves are
real HTTP to a loopback server; their answers are awaited, never timed.
"""

from __future__ import annotations

from typing import Any

from aio_assume_role_lib import RefreshPolicy
from aio_assume_role_lib._fetch import (
    AssumeRoleFetcher,
    classify_error,
    describe_error,
    error_code,
)
from aio_assume_role_lib._params import prepare_args
from aio_assume_role_lib._refresh import Refresher
from aio_assume_role_lib._sts import StsClients

from ._manual_clock import ManualClock

# Room enough that the fetcher's own real-time bounds (its lock wait and cache reads,
# which assume_role sets to half a try) never act first: the hand clock decides.
NO_REAL_TIME_BOUND = 3600.0


def hand_clock_child(
    table: StsClients,
    clock: ManualClock,
    role_arn: str,
    *,
    policy: RefreshPolicy | None = None,
    cache: Any = None,
    lock_timeout: float = NO_REAL_TIME_BOUND,
    **assume_role_kwargs: Any,
) -> Refresher[Any]:
    """A child's refresher, as ``assume_role`` makes it, on ``clock``."""
    fetcher = AssumeRoleFetcher(
        table, prepare_args(role_arn, **assume_role_kwargs), cache=cache, lock_timeout=lock_timeout
    )
    return Refresher(
        fetcher,
        prepare=fetcher.prepare,
        after_success=fetcher.after_success,
        loaded_from_cache=fetcher.loaded_from_cache,
        policy=policy,
        wall_clock=clock.wall,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        random=lambda: 0.0,
        classify_error=classify_error,
        describe_error=describe_error,
        error_code=error_code,
        key_of=lambda credentials: credentials.access_key,
        description=fetcher.description,
        expiry_margin_seconds=1.0,
        retry_early=fetcher.parent_renewed,
    )
