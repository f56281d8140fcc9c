"""Light children (``_child``): what a child shares with its parent's template, what it owns.

A child is a plain ``AioSession`` that behaves as a freshly built one would; these tests
compare it with one, over real HTTP to the loopback STS where a request is involved.
"""

from __future__ import annotations

import copy
import random
import tracemalloc
from typing import Any

import pytest
from aiobotocore.hooks import AioHierarchicalEmitter
from aiobotocore.session import AioSession

from aio_assume_role_lib import assume_role
from aio_assume_role_lib._child import ChildTemplate, LayeredEmitter
from aio_assume_role_lib.testing import LoopbackSTS

from .conftest import ROLE_A, caller_arn

pytestmark = pytest.mark.anyio

EVENTS = [
    "before-call.sts.GetCallerIdentity",
    "before-call.sts.AssumeRole",
    "before-call.s3.GetObject",
    "request-created.sts.GetCallerIdentity",
    "after-call.s3.PutObject",
    "creating-client-class.s3",
    "creating-client-class.sts",
    "choose-service-name",
    "before-parameter-build.s3.PutObject",
]


def handlers_of(emitter: Any, event: str) -> list[Any]:
    return list(emitter._handlers.prefix_search(event))


def _handler(n: int) -> Any:
    def handler(**kwargs: Any) -> None:
        return None

    handler.__name__ = f"handler_{n}"
    return handler


@pytest.mark.parametrize("seed", range(40))
def test_layered_emitter_finds_what_a_copy_with_the_same_registrations_finds(seed: int) -> None:
    """Random registrations (every section, wildcards, unique ids, unregistering its own
    and the base's handlers) on a layered emitter and on a plain copy of the base: every
    event finds the same handlers in the same order, and a copy of the layered emitter
    (what a client takes) is the same as the plain copy."""
    rng = random.Random(seed)
    base = copy.copy(AioSession()._original_handler)
    plain = copy.copy(base)
    layered = LayeredEmitter(base)
    names = [*EVENTS, "before-call.*.GetObject", "before-call", "after-call.sts", "x.y.z"]
    mine: list[tuple[str, Any, str | None]] = []
    for step in range(30):
        event = rng.choice(names)
        choice = rng.random()
        if choice < 0.6 or not mine:
            handler = _handler(step)
            unique_id = f"uid-{rng.randrange(5)}" if rng.random() < 0.3 else None
            method = rng.choice(["register", "register_first", "register_last"])
            for emitter in (plain, layered):
                getattr(emitter, method)(event, handler, unique_id=unique_id)
            mine.append((event, handler, unique_id))
        elif choice < 0.8:
            event, handler, unique_id = rng.choice(mine)
            for emitter in (plain, layered):
                emitter.unregister(event, handler, unique_id=unique_id)
        elif seed % 4 == 0:  # sometimes unregister one of the base's handlers
            found = handlers_of(base, event)
            if found:
                handler = rng.choice(found)
                for emitter in (plain, layered):
                    emitter.unregister(event, handler)
    untouched = copy.copy(AioSession()._original_handler)
    for event in [*EVENTS, "before-call.s3.GetObject", "x.y.z", "before-call"]:
        expected = handlers_of(plain, event)
        if layered._plain is None:
            found = list(layered._handlers.prefix_search(event))
        else:
            found = handlers_of(layered._plain, event)
        assert found == expected, event
        assert handlers_of(copy.copy(layered), event) == expected, event
        # The base is never modified.
        assert handlers_of(base, event) == handlers_of(untouched, event)


async def test_layered_emitter_emits_base_and_own_handlers_in_order() -> None:
    base = AioHierarchicalEmitter()
    called: list[str] = []

    def named(name: str) -> Any:
        def handler(**kwargs: Any) -> None:
            called.append(name)

        return handler

    base.register("event.a", named("base-a"))
    base.register_last("event", named("base-last"))
    layered = LayeredEmitter(base)
    layered.register_first("event.a", named("own-first"))
    layered.register("event.a.b", named("own-specific"))
    layered.register("event.a", named("own-a"))
    await layered.emit("event.a.b")
    assert called == ["own-specific", "own-first", "base-a", "own-a", "base-last"]
    called.clear()
    await copy.copy(layered).emit("event.a.b")
    assert called == ["own-specific", "own-first", "base-a", "own-a", "base-last"]


async def test_layered_emitter_still_rejects_handlers_without_kwargs() -> None:
    layered = LayeredEmitter(AioHierarchicalEmitter())

    def no_kwargs(request: Any) -> None:
        return None

    with pytest.raises(ValueError, match="must accept keyword arguments"):
        layered.register("event", no_kwargs)


async def test_handlers_registered_on_a_child_stay_on_that_child(sts: LoopbackSTS) -> None:
    parent = AioSession()
    child = await assume_role(parent, ROLE_A, RoleSessionName="one")
    sibling = await assume_role(parent, ROLE_A, RoleSessionName="two")
    seen: list[str] = []

    def note(context: Any, **kwargs: Any) -> None:
        seen.append("child")

    child.register("before-call.sts.GetCallerIdentity", note)
    assert (await caller_arn(sibling)).endswith("/two")
    await caller_arn(parent)
    assert seen == []
    assert (await caller_arn(child)).endswith("/one")
    assert seen == ["child"]


async def test_unregistering_a_default_handler_on_a_child_leaves_its_siblings_alone(
    sts: LoopbackSTS,
) -> None:
    parent = AioSession()
    child = await assume_role(parent, ROLE_A, RoleSessionName="one")
    sibling = await assume_role(parent, ROLE_A, RoleSessionName="two")
    event = "before-parameter-build.s3.PutObject"
    default = handlers_of(child._original_handler._base, event)[0]
    fresh = AioSession()
    fresh.unregister(event, default)
    assert default not in handlers_of(fresh._original_handler, event)
    child.unregister(event, default)
    async with child.create_client("s3", region_name="us-east-1") as s3:
        assert default not in handlers_of(s3.meta.events._emitter, event)
    async with sibling.create_client("s3", region_name="us-east-1") as s3:
        assert default in handlers_of(s3.meta.events._emitter, event)
    assert (await caller_arn(child)).endswith("/one")


async def test_a_child_owns_its_configuration(sts: LoopbackSTS) -> None:
    parent = AioSession()
    parent.set_config_variable("region", "eu-west-1")
    child = await assume_role(parent, ROLE_A, RoleSessionName="one")
    sibling = await assume_role(parent, ROLE_A, RoleSessionName="two")
    assert child.get_config_variable("region") == "eu-west-1"
    child.set_config_variable("region", "ap-south-1")
    child.session_var_map["max_attempts"] = (None, None, 7, int)
    assert child.get_config_variable("max_attempts") == 7
    assert sibling.get_config_variable("max_attempts") is None
    assert sibling.session_var_map["max_attempts"] != child.session_var_map["max_attempts"]
    assert AioSession().session_var_map["max_attempts"] == sibling.session_var_map["max_attempts"]
    assert sibling.get_config_variable("region") == "eu-west-1"
    assert child.get_config_variable("region") == "ap-south-1"
    assert child.get_component("config_store") is not sibling.get_component("config_store")
    assert type(child) is AioSession
    assert child.user_agent_name == AioSession().user_agent_name


async def test_children_share_the_templates_immutable_parts(sts: LoopbackSTS) -> None:
    parent = AioSession()
    child = await assume_role(parent, ROLE_A, RoleSessionName="one")
    sibling = await assume_role(parent, ROLE_A, RoleSessionName="two")
    for name in ("endpoint_resolver", "exceptions_factory", "default_config_resolver"):
        assert child._get_internal_component(name) is sibling._get_internal_component(name)
    assert child._original_handler._base is sibling._original_handler._base
    assert child.get_component("event_emitter") is not sibling.get_component("event_emitter")


def test_a_child_costs_a_few_kibibytes() -> None:
    """The issue's target is <= 32 KiB per cached tenant (credentials and child); the
    child itself, before its first client, stays well under that."""
    parent = AioSession()
    template = ChildTemplate(parent)
    assert template.light
    loader = parent.get_component("data_loader")
    template.new_session(object(), loader, None)
    tracemalloc.start()
    children = [template.new_session(object(), loader, None) for _ in range(200)]
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(children) == 200
    assert size / 200 < 12 * 1024, size / 200
