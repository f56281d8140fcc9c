"""Light child sessions: what every child of one parent shares, and what each owns.

Building an ``AioSession`` costs ~9 ms of CPU and ~128 KiB, nearly all of it the event
handlers botocore registers by default and the configuration providers. A service with
thousands of tenants builds one child per tenant, so a child here is a light copy of a
*template*: one plain ``AioSession`` built per parent, whose data loader is the parent's.

Each child shares with the template what depends on neither its credentials nor its region
(the handlers botocore registers by default, the endpoint resolver, the default-config
resolver, the exceptions factory) and owns the rest: its credentials, configuration store
(built on first use), instance variables, user agent, token and monitor components, and an
event emitter layered over the template's that holds only its own handlers. What a user
registers on a child therefore stays on that child, and a client made on it gets a plain
emitter with the template's handlers and the child's (in botocore's own order).

The child is a plain ``AioSession`` that behaves as a freshly built one would: same
implicit configuration (environment, default profile), the parent's loaded service data
and default client config, its region linked to the parent's as asked.
"""

from __future__ import annotations

import copy
import inspect
import types
from collections import deque
from collections.abc import Callable
from typing import Any

from aiobotocore.hooks import AioHierarchicalEmitter
from aiobotocore.session import AioSession
from botocore import hooks as _botocore_hooks
from botocore import session as _botocore_session
from botocore.configprovider import ConfigValueStore, create_botocore_default_config_mapping
from botocore.hooks import EventAliaser
from botocore.session import ComponentLocator, SessionVarDict

# What a fresh AioSession registers (botocore 1.40 and newer). A botocore that registers
# something else makes children the old way, a whole AioSession each, rather than guess.
_COMPONENTS = frozenset(
    {
        "config_store",
        "credential_provider",
        "data_loader",
        "event_emitter",
        "response_parser_factory",
        "token_provider",
        "user_agent_creator",
    }
)
_INTERNAL_COMPONENTS = frozenset(
    {
        "default_config_resolver",
        "endpoint_resolver",
        "exceptions_factory",
        "monitor",
        "smart_defaults_factory",
    }
)
_ATTRIBUTES = frozenset(
    {
        "_auth_token",
        "_client_config",
        "_components",
        "_config",
        "_credentials",
        "_events",
        "_internal_components",
        "_last_client_region_used",
        "_original_handler",
        "_profile",
        "_profile_map",
        "_session_instance_vars",
        "session_var_map",
        "user_agent_extra",
        "user_agent_name",
        "user_agent_version",
    }
)


def _merged_prefix_search(base: Any, own: Any, event_name: str) -> deque[Any]:
    """The handlers botocore's ``_PrefixTrie.prefix_search`` would find for ``event_name``
    in a trie holding ``base``'s registrations followed by ``own``'s: the same walk over
    both tries at once, each node's lists joined base first (registration appends)."""
    collected: deque[Any] = deque()
    parts = event_name.split(".")
    stack: list[tuple[Any, Any, int]] = [(base._root, own._root, 0)]
    while stack:
        base_node, own_node, index = stack.pop()
        first: list[Any] = []
        middle: list[Any] = []
        last: list[Any] = []
        for node in (base_node, own_node):
            if node is not None and node["values"]:
                first += node["values"].first
                middle += node["values"].middle
                last += node["values"].last
        complete = first + middle + last
        if complete:
            collected.extendleft(reversed(complete))
        if index != len(parts):
            base_children = base_node["children"] if base_node is not None else {}
            own_children = own_node["children"] if own_node is not None else {}
            wildcard = (base_children.get("*"), own_children.get("*"), index + 1)
            direct = (base_children.get(parts[index]), own_children.get(parts[index]), index + 1)
            # botocore pushes the wildcard first, so the direct match is walked first.
            if wildcard[0] is not None or wildcard[1] is not None:
                stack.append(wildcard)
            if direct[0] is not None or direct[1] is not None:
                stack.append(direct)
    return collected


class _LayeredTrie:
    """The handler trie of a :class:`LayeredEmitter`: registrations go to its own trie,
    searches walk the base's and its own (so botocore's ``_emit`` finds both, cached or
    not)."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.own = _botocore_hooks._PrefixTrie()  # type: ignore[attr-defined]

    def append_item(self, key: str, value: Any, section: Any = None) -> None:
        if section is None:
            self.own.append_item(key, value)
        else:
            self.own.append_item(key, value, section=section)

    def remove_item(self, key: str, value: Any) -> None:
        self.own.remove_item(key, value)

    def prefix_search(self, key: str) -> deque[Any]:
        return _merged_prefix_search(self.base, self.own, key)


def _registered_at(trie: Any, event_name: str, handler: Any) -> bool:
    node = trie._root
    for part in event_name.split("."):
        node = node["children"].get(part)
        if node is None:
            return False
    values = node["values"]
    return bool(values) and (
        handler in values.first or handler in values.middle or handler in values.last
    )


# botocore's private parts are used below; its type stubs do not declare them.
_Emitter: Any = AioHierarchicalEmitter
_SessionVars: Any = SessionVarDict


class LayeredEmitter(_Emitter):  # type: ignore[misc]
    """A child's event emitter: its own handlers over a base emitter nobody modifies.

    Emitting walks both (botocore's order, as if the child's registrations had been made
    on a copy of the base). A copy (what every client made on the child takes) is a plain
    emitter: a copy of the base with the child's registrations replayed in order. The
    rare registration that touches the base's own handlers (unregistering one of them,
    reusing one of their unique ids) turns the child into such a plain copy first.
    """

    def __init__(self, base: Any = None) -> None:
        super().__init__()
        self._base: Any = base if base is not None else AioHierarchicalEmitter()
        self._handlers: Any = _LayeredTrie(self._base._handlers)  # type: ignore[union-attr]
        self._ops: list[tuple[str, tuple[Any, ...]]] = []
        self._plain: Any = None

    def _verify_accept_kwargs(self, func: Any) -> None:
        # botocore asks inspect.getfullargspec on every registration (~70 us); for a plain
        # function or method the code's flags give the same answer.
        function = func.__func__ if type(func) is types.MethodType else func
        if type(function) is types.FunctionType and (
            function.__code__.co_flags & inspect.CO_VARKEYWORDS
        ):
            return
        super()._verify_accept_kwargs(func)

    def _replayed(self) -> Any:
        emitter = copy.copy(self._base)
        emitter._lookup_cache = {}
        for method, args in self._ops:
            getattr(emitter, method)(*args)
        return emitter

    def _make_plain(self) -> Any:
        if self._plain is None:
            self._plain = self._replayed()
            self._ops = []
            self._handlers = _LayeredTrie(self._base._handlers)
            self._unique_id_handlers: dict[Any, Any] = {}
            self._lookup_cache: dict[str, Any] = {}
        return self._plain

    def _register_section(
        self,
        event_name: str,
        handler: Any,
        unique_id: Any,
        unique_id_uses_count: bool,
        section: Any,
    ) -> None:
        args = (event_name, handler, unique_id, unique_id_uses_count, section)
        if self._plain is None and unique_id in self._base._unique_id_handlers:
            self._make_plain()
        if self._plain is not None:
            self._plain._register_section(*args)
            return
        self._ops.append(("_register_section", args))
        super()._register_section(*args)

    def unregister(
        self,
        event_name: str,
        handler: Any = None,
        unique_id: Any = None,
        unique_id_uses_count: bool = False,
    ) -> None:
        args = (event_name, handler, unique_id, unique_id_uses_count)
        if self._plain is None:
            if unique_id is not None:
                touches_base = unique_id in self._base._unique_id_handlers
            else:
                touches_base = _registered_at(self._base._handlers, event_name, handler)
            if touches_base:
                self._make_plain()
        if self._plain is not None:
            self._plain.unregister(*args)
            return
        self._ops.append(("unregister", args))
        super().unregister(*args)

    async def _emit(
        self, event_name: str, kwargs: dict[str, Any], stop_on_response: bool = False
    ) -> Any:
        if self._plain is not None:
            return await self._plain._emit(event_name, kwargs, stop_on_response)
        return await super()._emit(event_name, kwargs, stop_on_response)

    def __copy__(self) -> Any:
        if self._plain is not None:
            return copy.copy(self._plain)
        return self._replayed()


class _SharedSessionVars(_SessionVars):  # type: ignore[misc]
    """``session_var_map`` over the template's table, copied on the child's first write."""

    def __init__(self, session: Any, shared: dict[str, Any]) -> None:
        self._session = session
        self._store = shared
        self._copied = False

    def _own(self) -> None:
        if not self._copied:
            self._store = dict(self._store)
            self._copied = True

    def __setitem__(self, key: str, value: Any) -> None:
        self._own()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._own()
        super().__delitem__(key)


class ChildTemplate:
    """What every child of one parent shares (built on the parent's first child)."""

    def __init__(self, parent: Any) -> None:
        template: Any = AioSession()
        template.register_component("data_loader", parent.get_component("data_loader"))
        self._template = template
        components = template._components
        internal = template._internal_components
        self.light = (
            type(template) is AioSession
            and set(template.__dict__) == _ATTRIBUTES
            and set(components._components) | set(components._deferred) == _COMPONENTS
            and set(internal._components) | set(internal._deferred) == _INTERNAL_COMPONENTS
        )
        self._emitter = template._original_handler
        # Event names and their aliases are the same for every session: one cache for all.
        self._alias_cache = template._events._alias_name_cache
        self._exceptions_factory = internal.get_component("exceptions_factory")
        self._session_vars = template.session_var_map._store
        self._user_agent = (
            template.user_agent_name,
            template.user_agent_version,
            template.user_agent_extra,
        )

    def _internal(self, name: str) -> Callable[[], Any]:
        """A factory asking the template for an internal component it builds once."""
        locator = self._template._internal_components
        return lambda: locator.get_component(name)

    def new_session(
        self,
        credential_provider: Any,
        data_loader: Any,
        default_config: Any,
        configure: Callable[[ConfigValueStore, Any], None] | None = None,
    ) -> Any:
        """A light child session. ``configure`` runs on its configuration store when it
        is first built (the region link lives there)."""
        child: Any = AioSession.__new__(AioSession)
        emitter = LayeredEmitter(self._emitter)
        child._original_handler = emitter
        child._events = EventAliaser(emitter)
        child._events._alias_name_cache = self._alias_cache
        (child.user_agent_name, child.user_agent_version, child.user_agent_extra) = self._user_agent
        child._profile = None
        child._config = None
        child._credentials = None
        child._auth_token = None
        child._profile_map = None
        child._session_instance_vars = {}
        child._client_config = default_config
        child._last_client_region_used = None

        def create_config_store() -> ConfigValueStore:
            store = ConfigValueStore(mapping=create_botocore_default_config_mapping(child))
            if configure is not None:
                configure(store, child)
            return store

        components = child._components = ComponentLocator()
        components.register_component("event_emitter", child._events)
        components.register_component("credential_provider", credential_provider)
        components.register_component("data_loader", data_loader)
        components.lazy_register_component("config_store", create_config_store)
        internal = child._internal_components = ComponentLocator()
        internal.register_component("exceptions_factory", self._exceptions_factory)
        internal.lazy_register_component("endpoint_resolver", self._internal("endpoint_resolver"))
        internal.lazy_register_component(
            "default_config_resolver", self._internal("default_config_resolver")
        )
        # Components bound to the session itself (its configuration, its user agent).
        child._register_token_provider()
        child._register_response_parser_factory()
        child._register_monitor()
        child._register_smart_defaults_factory()
        child._register_user_agent_creator()
        child.session_var_map = _SharedSessionVars(child, self._session_vars)
        _botocore_session.invoke_initializers(child)  # type: ignore[attr-defined]
        return child
