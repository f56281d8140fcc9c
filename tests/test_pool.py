"""SPEC §4 R11: ``ClientPool`` against the loopback STS, on both stacks (and trio on S1).

Opening and closing are observed by wrapping the session's ``create_client`` (aioboto3:
``client`` / ``resource``) so that every open and close of a real aiobotocore client is
recorded in order; identities come from GetCallerIdentity; time is a hand-driven clock.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from aio_assume_role_lib import ClientPool, ClientPoolClosedError, assume_role
from aio_assume_role_lib._pool import _canonical_kwargs
from aio_assume_role_lib.testing import LoopbackSTS

from .conftest import (
    ASYNCIO_AND_TRIO,
    HANG_SECONDS,
    HAS_AIOBOTO3,
    HAS_TRIO,
    ROLE_A,
    ROLE_B,
    httpx_parent,
    make_parent,
)

pytestmark = pytest.mark.anyio

READER_ARN = "arn:aws:sts::111111111111:assumed-role/Reader/pool"
WRITER_ARN = "arn:aws:sts::222222222222:assumed-role/Writer/pool"


class _Recorded:
    """A client context manager that tells its Recorder when it opens and closes."""

    def __init__(self, recorder: Recorder, context: Any, label: str) -> None:
        self._recorder = recorder
        self._context = context
        self._label = label

    async def __aenter__(self) -> Any:
        recorder = self._recorder
        recorder.attempts += 1
        if recorder.gate is not None:
            await recorder.gate.wait()
        if recorder.failures:
            recorder.failures -= 1
            raise OSError("client could not be made (injected)")
        self._context = self._context()  # made only now: a failure leaves no coroutine behind
        client = await self._context.__aenter__()
        recorder.events.append(("open", self._label))
        return client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Closing may yield to the loop (httpx's does): a cancelled task must still close.
        await anyio.lowlevel.checkpoint()
        await self._context.__aexit__(exc_type, exc, tb)
        self._recorder.events.append(("close", self._label))


class Recorder:
    """Wraps ``session``'s client (or resource) factory; labels are the region_name."""

    def __init__(self, session: Any, method: str | None = None) -> None:
        if method is None:
            method = "create_client" if isinstance(session, AioSession) else "client"
        real = getattr(session, method)
        self.events: list[tuple[str, str]] = []
        self.attempts = 0
        self.failures = 0
        self.gate: anyio.Event | None = None

        def factory(service_name: str, **kwargs: Any) -> _Recorded:
            label = kwargs.get("region_name") or service_name
            return _Recorded(self, lambda: real(service_name, **kwargs), label)

        setattr(session, method, factory)

    @property
    def open(self) -> set[str]:
        state: dict[str, int] = {}
        for event, label in self.events:
            state[label] = state.get(label, 0) + (1 if event == "open" else -1)
        return {label for label, count in state.items() if count > 0}


@contextmanager
def no_unclosed_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail on ResourceWarning and on aiohttp's "Unclosed ..." reports (logged by asyncio)."""
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.ERROR):
        warnings.simplefilter("always")
        yield
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert not [r for r in caplog.records if "nclosed" in r.getMessage()]


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait (polling: the sweeper has no event to wait for) until ``condition()`` holds."""
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"not within {within} s")


async def child_of(kind: str = "aiobotocore", role: str = ROLE_A) -> Any:
    return await assume_role(make_parent(kind), role, RoleSessionName="pool")


def identity_calls(sts: LoopbackSTS) -> int:
    return sum(call.action == "GetCallerIdentity" for call in sts.calls)


# --- arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_clients": 0}, "max_clients must be a positive integer"),
        ({"max_clients": True}, "max_clients must be a positive integer"),
        ({"max_clients": 2.5}, "max_clients must be a positive integer"),
        ({"idle_timeout": 0}, "idle_timeout must be a positive number"),
        ({"idle_timeout": float("nan")}, "idle_timeout must be a positive number"),
        ({"idle_timeout": "5"}, "idle_timeout must be a positive number"),
    ],
)
def test_bad_settings_are_refused_with_the_parameter_named(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ClientPool(**kwargs)


async def test_bad_sessions_and_service_names_are_refused_before_any_await() -> None:
    pool = ClientPool()
    with pytest.raises(TypeError, match=r"AioSession or an aioboto3\.Session"):
        pool.client(object(), "sts")
    with pytest.raises(TypeError, match="service_name"):
        pool.client(AioSession(), "")
    with pytest.raises(TypeError, match=r"needs an aioboto3\.Session"):
        pool.resource(AioSession(), "s3")


def test_arguments_are_keyed_by_value_and_objects_by_identity() -> None:
    config = AioConfig()
    same = _canonical_kwargs({"region_name": "x", "config": config, "m": {"b": 1, "a": [1, 2]}})
    again = _canonical_kwargs({"m": {"a": [1, 2], "b": 1}, "config": config, "region_name": "x"})
    assert same == again
    assert hash(same) == hash(again)
    assert same != _canonical_kwargs(
        {"region_name": "x", "config": AioConfig(), "m": {"b": 1, "a": [1, 2]}}
    )
    assert _canonical_kwargs({"v": 1}) != _canonical_kwargs({"v": True})


# --- sharing and single flight -----------------------------------------------------------


async def test_one_client_is_shared_and_signs_as_the_role(
    sts: LoopbackSTS, session_kind: str
) -> None:
    child = await child_of(session_kind)
    recorder = Recorder(child)
    async with ClientPool() as pool:
        async with pool.client(child, "sts") as first:
            assert (await first.get_caller_identity())["Arn"] == READER_ARN
        async with pool.client(child, "sts") as second:
            assert second is first
        assert pool.open_clients == 1
        assert pool.clients_opened == 1
    assert recorder.events == [("open", "sts"), ("close", "sts")]
    assert pool.open_clients == 0


async def test_a_thousand_concurrent_first_leases_open_one_client(
    sts: LoopbackSTS, session_kind: str
) -> None:
    child = await child_of(session_kind)
    recorder = Recorder(child)
    recorder.gate = anyio.Event()  # the client is not ready until every task is waiting
    pool = ClientPool()
    seen: list[Any] = []

    async def lease() -> None:
        async with pool.client(child, "sts") as api:
            seen.append(api)
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(HANG_SECONDS):
        async with anyio.create_task_group() as tasks:
            for _ in range(1_000):
                tasks.start_soon(lease)
            await anyio.wait_all_tasks_blocked()
            assert recorder.attempts == 1
            recorder.gate.set()
        async with pool.client(child, "sts") as api:
            assert (await api.get_caller_identity())["Arn"] == READER_ARN
    assert len(seen) == 1_000
    assert len({id(api) for api in seen}) == 1
    assert recorder.attempts == 1
    assert pool.clients_opened == 1
    assert sts.assume_role_count == 1
    await pool.aclose()
    assert recorder.open == set()


async def test_a_failed_opening_reaches_every_waiter_and_the_next_lease_retries(
    sts: LoopbackSTS, session_kind: str
) -> None:
    child = await child_of(session_kind)
    recorder = Recorder(child)
    recorder.failures = 1
    recorder.gate = anyio.Event()
    errors: list[BaseException] = []

    async def lease() -> None:
        try:
            async with pool.client(child, "sts"):
                pass
        except OSError as exc:
            errors.append(exc)

    async with ClientPool() as pool:
        with anyio.fail_after(HANG_SECONDS):
            async with anyio.create_task_group() as tasks:
                for _ in range(50):
                    tasks.start_soon(lease)
                await anyio.wait_all_tasks_blocked()
                recorder.gate.set()
        assert len(errors) == 50
        assert {str(error) for error in errors} == {"client could not be made (injected)"}
        assert recorder.attempts == 1
        assert pool.open_clients == 0  # the failed slot was given back
        async with pool.client(child, "sts") as api:  # tries again, and works
            assert (await api.get_caller_identity())["Arn"] == READER_ARN
        assert recorder.attempts == 2


async def test_cancelling_the_task_that_opens_a_client_does_not_fail_the_others(
    sts: LoopbackSTS,
) -> None:
    child = await child_of()
    recorder = Recorder(child)
    recorder.gate = anyio.Event()
    got: list[Any] = []
    opener = anyio.CancelScope()

    async def lease() -> None:
        async with pool.client(child, "sts") as api:
            await anyio.lowlevel.checkpoint()  # where a cancelled lease sees its cancellation
            got.append(api)

    async def cancelled_lease() -> None:
        with opener:
            await lease()

    async with ClientPool() as pool:
        with anyio.fail_after(HANG_SECONDS):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(cancelled_lease)  # opens the client; the others wait for it
                await anyio.wait_all_tasks_blocked()
                for _ in range(5):
                    tasks.start_soon(lease)
                await anyio.wait_all_tasks_blocked()
                opener.cancel()
                await anyio.wait_all_tasks_blocked()
                recorder.gate.set()
        assert opener.cancelled_caught
        assert len(got) == 5
        assert recorder.attempts == 1
        assert pool.open_clients == 1


# --- bound, LRU, idle --------------------------------------------------------------------


async def test_the_least_recently_used_idle_client_is_closed_first(
    sts: LoopbackSTS, session_kind: str
) -> None:
    child = await child_of(session_kind)
    recorder = Recorder(child)
    async with ClientPool(max_clients=2) as pool:
        for region in ["us-east-1", "us-west-2", "us-east-1"]:  # us-west-2 is now the LRU
            async with pool.client(child, "sts", region_name=region):
                pass
        async with pool.client(child, "sts", region_name="eu-west-1") as api:
            assert recorder.open == {"us-east-1", "eu-west-1"}
            assert pool.open_clients == 2
            assert (await api.get_caller_identity())["Arn"] == READER_ARN
    assert recorder.events == [
        ("open", "us-east-1"),
        ("open", "us-west-2"),
        ("close", "us-west-2"),
        ("open", "eu-west-1"),
        ("close", "us-east-1"),
        ("close", "eu-west-1"),
    ]


async def test_at_capacity_a_lease_waits_for_a_client_to_come_back(
    sts: LoopbackSTS, session_kind: str
) -> None:
    child = await child_of(session_kind)
    recorder = Recorder(child)
    leased = anyio.Event()
    give_back = anyio.Event()

    async def hold(region: str) -> None:
        async with pool.client(child, "sts", region_name=region):
            leased.set()
            await give_back.wait()

    async def use(region: str) -> None:
        async with pool.client(child, "sts", region_name=region) as api:
            assert (await api.get_caller_identity())["Arn"] == READER_ARN

    async with ClientPool(max_clients=1) as pool:
        with anyio.fail_after(HANG_SECONDS):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(hold, "us-east-1")
                await leased.wait()
                tasks.start_soon(use, "us-west-2")
                await anyio.wait_all_tasks_blocked()
                # The held client is not closed under its lease, and nothing else opens.
                assert recorder.events == [("open", "us-east-1")]
                assert pool.open_clients == 1
                give_back.set()
    assert recorder.events[:3] == [
        ("open", "us-east-1"),
        ("close", "us-east-1"),
        ("open", "us-west-2"),
    ]


async def test_idle_clients_are_closed_after_idle_timeout(sts: LoopbackSTS) -> None:
    now = [1000.0]
    child = await child_of()
    recorder = Recorder(child)
    async with ClientPool(idle_timeout=10.0, clock=lambda: now[0]) as pool:
        async with pool.client(child, "sts", region_name="us-east-1"):
            now[0] += 60.0  # a long lease is not idle
        async with pool.client(child, "sts", region_name="us-west-2"):
            pass
        now[0] += 9.0
        async with pool.client(child, "sts", region_name="us-west-2"):
            pass
        assert recorder.open == {"us-east-1", "us-west-2"}
        now[0] += 1.0  # us-east-1 idle for 10 s, us-west-2 for 0
        async with pool.client(child, "sts", region_name="us-west-2"):
            assert recorder.open == {"us-west-2"}
        now[0] += 10.0
        async with pool.client(child, "sts", region_name="eu-west-1"):
            assert recorder.open == {"eu-west-1"}
            assert pool.open_clients == 1


@pytest.mark.parametrize("anyio_backend", ASYNCIO_AND_TRIO)
async def test_idle_clients_are_closed_with_no_lease_to_notice(
    sts: LoopbackSTS, anyio_backend: str
) -> None:
    """The sweeper task closes idle clients of a quiet loop, then ends."""
    child = await (
        assume_role(httpx_parent(), ROLE_A, RoleSessionName="pool")
        if anyio_backend == "trio"
        else child_of()
    )
    recorder = Recorder(child)
    async with ClientPool(idle_timeout=0.2) as pool:
        async with pool.client(child, "sts", region_name="us-east-1"):
            pass
        async with pool.client(child, "sts", region_name="us-west-2") as api:
            await eventually(lambda: recorder.open == {"us-west-2"})  # not the one lent out
            assert (await api.get_caller_identity())["Arn"] == READER_ARN
        await eventually(lambda: recorder.open == set())
        assert pool.open_clients == 0
        (loop_clients,) = pool._loops.values()
        await eventually(lambda: not loop_clients.sweeping)  # nothing to watch: it has ended


async def test_aclose_ends_the_sweeper_at_once(sts: LoopbackSTS) -> None:
    child = await child_of()
    pool = ClientPool(idle_timeout=600.0)
    async with pool.client(child, "sts"):
        pass
    (loop_clients,) = pool._loops.values()
    await anyio.wait_all_tasks_blocked()
    assert loop_clients.sweeping  # asleep for 600 s
    await pool.aclose()
    await eventually(lambda: not loop_clients.sweeping, within=5.0)


async def test_idle_timeout_none_keeps_idle_clients(sts: LoopbackSTS) -> None:
    now = [0.0]
    child = await child_of()
    recorder = Recorder(child)
    async with ClientPool(idle_timeout=None, clock=lambda: now[0]) as pool:
        async with pool.client(child, "sts", region_name="us-east-1"):
            pass
        now[0] += 1e9
        async with pool.client(child, "sts", region_name="us-west-2"):
            assert recorder.open == {"us-east-1", "us-west-2"}


# --- keys --------------------------------------------------------------------------------


async def test_different_roles_services_and_configs_get_different_clients(
    sts: LoopbackSTS,
) -> None:
    parent = make_parent()
    reader = await assume_role(parent, ROLE_A, RoleSessionName="pool")
    writer = await assume_role(parent, ROLE_B, RoleSessionName="pool")
    config = AioConfig(max_pool_connections=5)
    async with ClientPool() as pool:
        async with pool.client(reader, "sts") as a, pool.client(writer, "sts") as b:
            assert (await a.get_caller_identity())["Arn"] == READER_ARN
            assert (await b.get_caller_identity())["Arn"] == WRITER_ARN
        async with pool.client(reader, "sts", config=config) as c1:
            pass
        async with pool.client(reader, "sts", config=config) as c2:
            assert c2 is c1
        async with pool.client(reader, "sts", config=AioConfig(max_pool_connections=5)) as c3:
            assert c3 is not c1  # configs are compared by identity
        assert pool.open_clients == 4


async def test_a_session_whose_region_or_credentials_changed_gets_a_new_client(
    sts: LoopbackSTS,
) -> None:
    parent = make_parent()
    child = await assume_role(parent, ROLE_A, RoleSessionName="pool")
    async with ClientPool() as pool:
        async with pool.client(child, "sts") as before:
            assert before.meta.region_name == "us-east-1"
        parent.set_config_variable("region", "eu-west-1")  # the child follows its parent
        async with pool.client(child, "sts") as after:
            assert after is not before
            assert after.meta.region_name == "eu-west-1"

        plain = AioSession()
        async with pool.client(plain, "sts") as root:
            assert (await root.get_caller_identity())["Arn"] == sts.root_arn
        key, secret = sts.root_credentials
        plain.set_credentials(key, secret)  # a new credentials object
        async with pool.client(plain, "sts") as again:
            assert again is not root
            assert (await again.get_caller_identity())["Arn"] == sts.root_arn


# --- closing -----------------------------------------------------------------------------


async def test_aclose_waits_for_leases_and_refuses_new_ones(
    sts: LoopbackSTS, session_kind: str
) -> None:
    child = await child_of(session_kind)
    recorder = Recorder(child)
    pool = ClientPool()
    leased = anyio.Event()
    give_back = anyio.Event()
    closed = anyio.Event()

    async def hold() -> None:
        async with pool.client(child, "sts", region_name="us-east-1") as api:
            leased.set()
            await give_back.wait()
            # Still usable while its lease lasts, though the pool is closing.
            assert (await api.get_caller_identity())["Arn"] == READER_ARN

    async def close() -> None:
        await pool.aclose()
        closed.set()

    async with pool.client(child, "sts", region_name="us-west-2"):
        pass  # an idle one, closed at once
    with anyio.fail_after(HANG_SECONDS):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            await leased.wait()
            tasks.start_soon(close)
            await anyio.wait_all_tasks_blocked()
            assert recorder.open == {"us-east-1"}
            assert not closed.is_set()
            with pytest.raises(ClientPoolClosedError, match="closed"):
                async with pool.client(child, "sts"):
                    pass
            give_back.set()
    assert closed.is_set()
    assert recorder.open == set()
    assert pool.open_clients == 0
    with pytest.raises(ClientPoolClosedError):
        async with pool:
            pass
    await pool.aclose()  # again: nothing to do


async def test_a_lease_waiting_for_room_is_refused_when_the_pool_closes(
    sts: LoopbackSTS,
) -> None:
    child = await child_of()
    pool = ClientPool(max_clients=1)
    outcome: list[BaseException] = []

    async def wait_for_room() -> None:
        try:
            async with pool.client(child, "sts", region_name="us-west-2"):
                pass
        except ClientPoolClosedError as exc:
            outcome.append(exc)

    with anyio.fail_after(HANG_SECONDS):
        async with (
            pool.client(child, "sts", region_name="us-east-1"),
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(wait_for_room)
            await anyio.wait_all_tasks_blocked()
            tasks.start_soon(pool.aclose)
            await anyio.wait_all_tasks_blocked()
            assert len(outcome) == 1
            tasks.cancel_scope.cancel()  # aclose waits for the lease this task holds
        await pool.aclose()


async def test_a_cancelled_lease_gives_its_client_back_and_closing_still_closes_it(
    sts: LoopbackSTS,
) -> None:
    child = await child_of()
    recorder = Recorder(child)
    pool = ClientPool(max_clients=1)
    leased = anyio.Event()

    async def hold_until_cancelled() -> None:
        async with pool.client(child, "sts", region_name="us-east-1"):
            leased.set()
            await anyio.sleep_forever()

    with anyio.fail_after(HANG_SECONDS):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold_until_cancelled)
            await leased.wait()
            tasks.start_soon(pool.aclose)  # waits for that lease
            await anyio.wait_all_tasks_blocked()
            tasks.cancel_scope.cancel()  # cancels the holder (and aclose)
    # The lease came back although its task was cancelled, and (the pool closing) the
    # client was closed when it did.
    assert recorder.events == [("open", "us-east-1"), ("close", "us-east-1")]
    assert pool.open_clients == 0
    await pool.aclose()


async def test_closing_leaves_no_unclosed_sessions(
    sts: LoopbackSTS, session_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    with no_unclosed_warnings(caplog):
        child = await child_of(session_kind)
        async with ClientPool(max_clients=2) as pool:
            for region in ["us-east-1", "us-west-2", "eu-west-1", "us-east-1"]:
                async with pool.client(child, "sts", region_name=region) as api:
                    assert (await api.get_caller_identity())["Arn"] == READER_ARN
        del api, pool, child


# --- event loops -------------------------------------------------------------------------


def test_each_event_loop_gets_its_own_clients(
    sts: LoopbackSTS, caplog: pytest.LogCaptureFixture
) -> None:
    pool = ClientPool()
    parent = make_parent()
    recorder: list[Recorder] = []

    async def lease() -> Any:
        child = await assume_role(parent, ROLE_A, RoleSessionName="pool")
        if not recorder:
            recorder.append(Recorder(child))
        async with pool.client(child, "sts") as api:
            assert (await api.get_caller_identity())["Arn"] == READER_ARN
            return api

    with no_unclosed_warnings(caplog):
        # Sequential asyncio.run calls: the pool is never closed; each loop closes its own
        # client when it shuts down, and the next loop does not touch it.
        first = asyncio.run(lease())
        assert recorder[0].events == [("open", "sts"), ("close", "sts")]
        assert pool.open_clients == 0
        second = asyncio.run(lease())
        assert second is not first
        assert recorder[0].events == [("open", "sts"), ("close", "sts")] * 2

        # Two threads, each with its own loop, at the same time.
        results: list[Any] = []
        barrier = threading.Barrier(2)

        def thread_main() -> None:
            async def both() -> Any:
                api = await lease()
                barrier.wait(HANG_SECONDS)  # both loops alive at once
                return api

            results.append(asyncio.run(both()))

        threads = [threading.Thread(target=thread_main) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(results) == 2
        assert results[0] is not results[1]
        asyncio.run(pool.aclose())
        with pytest.raises(ClientPoolClosedError):  # from a loop it never saw, too
            asyncio.run(lease())
    assert sts.assume_role_count == 1


def test_aclose_closes_the_clients_of_another_threads_loop_on_that_loop(
    sts: LoopbackSTS,
) -> None:
    pool = ClientPool()
    child = asyncio.run(child_of())
    recorder = Recorder(child)
    leased, closed_elsewhere = threading.Event(), threading.Event()
    close_threads: set[int] = set()
    outcome: list[Any] = []

    real_exit = _Recorded.__aexit__

    async def noting_exit(self: _Recorded, *exc_info: Any) -> None:
        close_threads.add(threading.get_ident())
        await real_exit(self, *exc_info)

    async def other_loop() -> None:
        async with pool.client(child, "sts") as api:
            assert (await api.get_caller_identity())["Arn"] == READER_ARN
        leased.set()
        # This loop stays alive (idle client and all) until the other loop has closed it.
        await anyio.to_thread.run_sync(closed_elsewhere.wait, HANG_SECONDS)
        for _ in range(100):  # the close was scheduled on this loop: let it run
            if recorder.open == set():
                break
            await anyio.sleep(0.01)
        outcome.append((threading.get_ident(), recorder.open))

    def thread_main() -> None:
        asyncio.run(other_loop())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_Recorded, "__aexit__", noting_exit)
        thread = threading.Thread(target=thread_main)
        thread.start()
        assert leased.wait(HANG_SECONDS)
        asyncio.run(pool.aclose())
        closed_elsewhere.set()
        thread.join(10)
    assert not thread.is_alive()
    assert recorder.events == [("open", "sts"), ("close", "sts")]
    # Closed by its own loop's thread, while that loop ran (not by its shutdown).
    ((loop_thread, still_open),) = outcome
    assert still_open == set()
    assert close_threads == {loop_thread}


# --- trio and resources ------------------------------------------------------------------


@pytest.mark.trio
@pytest.mark.skipif(not HAS_TRIO, reason="trio and httpx are installed on stack S1 only")
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio(sts: LoopbackSTS) -> None:
    child = await assume_role(httpx_parent(), ROLE_A, RoleSessionName="pool")
    recorder = Recorder(child)
    seen: list[Any] = []

    async def lease() -> None:
        async with pool.client(child, "sts", region_name="us-east-1") as api:
            seen.append(api)

    async with ClientPool(max_clients=1) as pool:
        async with anyio.create_task_group() as tasks:
            for _ in range(200):
                tasks.start_soon(lease)
        assert len({id(api) for api in seen}) == 1
        async with pool.client(child, "sts", region_name="us-west-2") as api:
            assert (await api.get_caller_identity())["Arn"] == READER_ARN
    assert recorder.events == [
        ("open", "us-east-1"),
        ("close", "us-east-1"),
        ("open", "us-west-2"),
        ("close", "us-west-2"),
    ]
    assert recorder.attempts == 2


@pytest.mark.trio
@pytest.mark.skipif(not HAS_TRIO, reason="trio and httpx are installed on stack S1 only")
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_a_lease_waits_for_room_and_aclose_waits_for_leases(
    sts: LoopbackSTS,
) -> None:
    child = await assume_role(httpx_parent(), ROLE_A, RoleSessionName="pool")
    recorder = Recorder(child)
    pool = ClientPool(max_clients=1)
    leased, give_back = anyio.Event(), anyio.Event()

    async def hold() -> None:
        async with pool.client(child, "sts", region_name="us-east-1"):
            leased.set()
            await give_back.wait()

    async def use() -> None:
        async with pool.client(child, "sts", region_name="us-west-2") as api:
            assert (await api.get_caller_identity())["Arn"] == READER_ARN

    closed: list[set[str]] = []

    async def close() -> None:
        await pool.aclose()
        closed.append(recorder.open)

    with anyio.fail_after(HANG_SECONDS):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            await leased.wait()
            tasks.start_soon(use)
            await anyio.wait_all_tasks_blocked()
            assert recorder.events == [("open", "us-east-1")]  # use() waits for room
            give_back.set()
        async with anyio.create_task_group() as tasks:
            leased, give_back = anyio.Event(), anyio.Event()
            tasks.start_soon(hold)
            await leased.wait()
            tasks.start_soon(close)
            await anyio.wait_all_tasks_blocked()
            assert closed == []  # aclose waits for the lease
            assert recorder.open == {"us-east-1"}
            give_back.set()
    assert closed == [set()]  # and returns once it is closed
    assert pool.open_clients == 0


@pytest.mark.skipif(not HAS_AIOBOTO3, reason="aioboto3 is installed on stack S2 only")
async def test_aioboto3_resources_are_shared_and_bounded(
    sts: LoopbackSTS, caplog: pytest.LogCaptureFixture
) -> None:
    with no_unclosed_warnings(caplog):
        child = await child_of("aioboto3")
        recorder = Recorder(child, "resource")
        async with ClientPool(max_clients=1) as pool:
            async with pool.resource(child, "s3", region_name="us-east-1") as first:
                assert first.meta.client.meta.region_name == "us-east-1"
            async with pool.resource(child, "s3", region_name="us-east-1") as again:
                assert again is first
            async with pool.client(child, "s3", region_name="us-east-1") as client:
                assert client is not first.meta.client  # a client and a resource differ
            assert recorder.open == set()  # the resource was evicted for the client
        del first, again, client
    assert recorder.events == [("open", "us-east-1"), ("close", "us-east-1")]
