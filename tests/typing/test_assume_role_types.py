# mypy: warn-unreachable
"""What a user's ``mypy --strict`` infers from ``assume_role`` and its results, on either stack.

Checked by mypy (``python3 dev.py test`` runs it on stacks S1 and S2, with the stubs users
install: types-aiobotocore, boto3-stubs), not run by pytest: nothing here is a test
function, and the ``check_`` functions are never called. Each ``# type: ignore[code]``
here asserts that mypy *rejects* the line: under ``--strict`` an ignore that is not
needed is itself an error, so a signature that starts accepting the line fails the check.

    mypy --strict src examples tests/typing/test_assume_role_types.py
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.utils
from aiobotocore.credentials import AioCredentials
from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials
from typing_extensions import assert_type

from aio_assume_role_lib import (
    AUTOMATIC_ROLE_SESSION_NAME,
    AssumeRoleCredentials,
    JSONFileCache,
    RefreshPolicy,
    RefreshStats,
    assume_role,
    credentials_of,
    get_role_arn,
    patch_aiobotocore,
)
from aio_assume_role_lib.testing import time_travel

ROLE = "arn:aws:iam::123456789012:role/Reader"


async def check_a_child_is_an_aiosession(parent: AioSession) -> None:
    child = await assume_role(parent, ROLE)
    assert_type(child, AioSession)
    grandchild = await assume_role(
        child,
        get_role_arn("123456789012", "Writer"),
        RoleSessionName=AUTOMATIC_ROLE_SESSION_NAME,
        PolicyArns=["arn:aws:iam::aws:policy/ReadOnlyAccess", {"arn": "arn:aws:iam::aws:x"}],
        Policy={"Version": "2012-10-17", "Statement": []},
        DurationSeconds=timedelta(hours=1),
        Tags={"team": "data"},
        TransitiveTagKeys=["team"],
        ExternalId="external",
        SerialNumber="arn:aws:iam::123456789012:mfa/me",
        TokenCode=lambda: "123456",
        SourceIdentity="me",
        region_name=True,
        validate=False,
        additional_kwargs={"ProvidedContexts": []},
        refresh=RefreshPolicy(blocking_window_seconds=30),
    )
    assert_type(grandchild, AioSession)


async def check_a_token_code_can_be_async(parent: AioSession) -> None:
    async def prompt() -> str:
        return "123456"

    assert_type(await assume_role(parent, ROLE, TokenCode=prompt), AioSession)
    assert_type(await assume_role(parent, ROLE, TokenCode="123456"), AioSession)


async def check_caches(parent: AioSession, directory: str) -> None:
    # The documented caches: this library's JSONFileCache, botocore's, any dict or
    # MutableMapping with string keys.
    await assume_role(parent, ROLE, cache=JSONFileCache(directory))
    await assume_role(parent, ROLE, cache=JSONFileCache(Path(directory)))
    await assume_role(parent, ROLE, cache=botocore.utils.JSONFileCache(directory))
    responses: dict[str, dict[str, Any]] = {}
    await assume_role(parent, ROLE, cache=responses)
    mapping: MutableMapping[str, Any] = {}
    await assume_role(parent, ROLE, cache=mapping)
    # Not caches: a directory name, a list, a mapping with other keys.
    await assume_role(parent, ROLE, cache=directory)  # type: ignore[call-overload]
    await assume_role(parent, ROLE, cache=[])  # type: ignore[call-overload]
    by_number: dict[int, Any] = {}
    await assume_role(parent, ROLE, cache=by_number)  # type: ignore[arg-type]


async def check_the_credentials_object(child: AioSession) -> None:
    # aiobotocore's stubs type get_credentials() as AioCredentials | None, and with
    # types-aiobotocore 3.x an isinstance() check against AssumeRoleCredentials makes
    # mypy treat what follows as unreachable (so unchecked): credentials_of() is typed.
    assert_type(await child.get_credentials(), AioCredentials | None)
    credentials = credentials_of(child)
    assert_type(credentials, AssumeRoleCredentials)
    assert_type(credentials.refresh_stats, RefreshStats)
    assert_type(credentials.refresh_stats.attempts, int)
    assert_type(credentials.refresh_policy, RefreshPolicy)
    assert_type(credentials.expiry_time, datetime | None)
    assert_type(credentials.role_arn, str)
    assert_type(credentials.refresh_needed(), bool)
    assert_type(credentials.invalidate(), bool)
    assert_type(await credentials.get_frozen_credentials(), ReadOnlyCredentials)
    assert_type(await credentials.get_access_key(), str)
    assert_type(await credentials.get_secret_key(), str)
    assert_type(await credentials.get_token(), str)
    # A misspelled attribute is caught (it was not, after the isinstance() pattern).
    credentials.refresh_statz  # type: ignore[attr-defined]  # noqa: B018
    # The kind of credentials object can be named (the library's other kinds plug in).
    assert_type(credentials_of(child, AssumeRoleCredentials), AssumeRoleCredentials)
    # Not sessions.
    credentials_of(credentials)  # type: ignore[call-overload]
    credentials_of("child")  # type: ignore[call-overload]


def check_time_travel(child: AioSession) -> None:
    assert_type(time_travel(child, "advisory"), float)
    time_travel(child, "blocking")
    time_travel(child, "expired")
    time_travel(child, "later")  # type: ignore[arg-type]


async def check_the_parent_attribute(parent: AioSession) -> None:
    child = await assume_role(parent, ROLE)
    # Set at run time on a plain AioSession: type checkers do not see it (docs/faq.md).
    child.assume_role_parent_session  # type: ignore[attr-defined]  # noqa: B018


async def check_the_patched_method(parent: AioSession) -> None:
    patch_aiobotocore()
    # Added at run time: type checkers do not see it (docs/faq.md); assume_role(parent,
    # ...) is the typed spelling of the same call.
    child = await parent.assume_role(ROLE)  # type: ignore[attr-defined]
    assert_type(child, Any)
    assert_type(await assume_role(parent, ROLE), AioSession)


async def check_what_is_not_a_session_is_refused(parent: AioSession) -> None:
    # On stack S1 aioboto3 is not installed: the aioboto3 overload must not turn into
    # "anything goes" then.
    await assume_role(object(), ROLE)  # type: ignore[call-overload]
    await assume_role("default", ROLE)  # type: ignore[call-overload]
    await assume_role(None, ROLE)  # type: ignore[call-overload]
    await assume_role(botocore.utils.JSONFileCache(), ROLE)  # type: ignore[call-overload]
    # Nor are arguments of the wrong type.
    await assume_role(parent, 123456789012)  # type: ignore[call-overload]
    await assume_role(parent, ROLE, DurationSeconds="1h")  # type: ignore[call-overload]
    await assume_role(parent, ROLE, region_name=1)  # type: ignore[call-overload]
    await assume_role(parent, ROLE, refresh={"max_tries": 1})  # type: ignore[call-overload]
    await assume_role(parent, ROLE, Role="x")  # type: ignore[call-overload]


def check_stabilize_returns_the_session_it_was_given(session: AioSession) -> None:
    from aio_assume_role_lib import stabilize

    assert_type(stabilize(session), AioSession)
    assert_type(stabilize(session, refresh=RefreshPolicy()), AioSession)
    stabilize("a session")  # type: ignore[call-overload]
    stabilize(session, refresh=30)  # type: ignore[call-overload]
