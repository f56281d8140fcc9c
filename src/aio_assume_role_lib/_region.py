"""Linking a child session's region to its parent's (``region_name=None``)."""

from __future__ import annotations

from typing import Any

from botocore.configprovider import BaseProvider, ChainProvider, InstanceVarProvider


class _ParentRegionProvider(BaseProvider):
    """Reads the parent's region each time it is asked, so later changes show through."""

    def __init__(self, parent: Any) -> None:
        self._parent = parent

    def provide(self) -> Any:
        return self._parent.get_config_variable("region")

    def __repr__(self) -> str:
        return "ParentRegionProvider()"


def link_region(child: Any, parent: Any) -> None:
    """Make ``child``'s region its own setting if it has one, else the parent's current one.

    Both are botocore sessions. The child's own ``set_config_variable("region", ...)``
    (and so ``region_name`` on an aioboto3 child) still overrides the link.
    """
    link_region_in(child.get_component("config_store"), child, parent)


def link_region_in(config_store: Any, child: Any, parent: Any) -> None:
    """:func:`link_region` on ``child``'s configuration store, given (while it is built)."""
    config_store.set_config_provider(
        "region",
        ChainProvider(
            providers=[InstanceVarProvider("region", child), _ParentRegionProvider(parent)]
        ),
    )


def apply_region_mode(child: Any, parent: Any, region_name: str | bool | None) -> None:
    """Apply ``region_name``: None links, True copies, False leaves it implicit, a string pins it."""
    if region_name is None:
        link_region(child, parent)
    elif region_name is True:
        region = parent.get_config_variable("region")
        if region is not None:
            child.set_config_variable("region", region)
    elif isinstance(region_name, str):
        child.set_config_variable("region", region_name)
