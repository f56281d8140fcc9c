"""A child session's region: linked to its parent's (``region_name=None``), and the one
the parent's STS client needs."""

from __future__ import annotations

from typing import Any

from botocore.configprovider import (
    BaseProvider,
    ChainProvider,
    ConfiguredEndpointProvider,
    InstanceVarProvider,
)
from botocore.exceptions import NoRegionError


class NoRegionForSTSError(NoRegionError):
    """The parent session has no region, and its STS calls go to a configured endpoint.

    A ``botocore.exceptions.NoRegionError``, so that handlers of that error catch it.
    """

    fmt = (
        "You must specify a region: the parent session has none, and its STS calls go to a "
        "configured endpoint URL (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL or endpoint_url in "
        "the config file), where a request is signed for a region. A child's credentials "
        "are fetched with its parent session, so give the parent a region: "
        "AioSession().set_config_variable('region', 'eu-west-1') or "
        "aioboto3.Session(region_name='eu-west-1'), AWS_DEFAULT_REGION (botocore does not "
        "read AWS_REGION), or region in the profile. assume_role()'s region_name= sets "
        "the child's region only."
    )


class _ParentRegionProvider(BaseProvider):
    """Reads the parent's region each time it is asked, so later changes show through."""

    def __init__(self, parent: Any) -> None:
        self._parent = parent

    def provide(self) -> Any:
        return self._parent.get_config_variable("region")

    def __repr__(self) -> str:
        return "ParentRegionProvider()"


# Set on a light child whose region is linked to its parent's (region_name=None), so that
# current_region() can answer without building the child's configuration store.
LINKED_ATTRIBUTE = "_aio_assume_role_lib_region_linked"


def current_region(child: Any, parent: Any) -> str | None:
    """The region a client made on ``child`` gets (unless told another), as botocore
    resolves it: the child's own setting first, then the link or its implicit sources.

    A linked child's configuration store is not built for this: building it costs
    ~0.2 ms of CPU and ~20 KiB, and a tenant's child may never need it otherwise.
    """
    own = child.instance_variables().get("region")
    if own is not None:
        return str(own)
    if child.__dict__.get(LINKED_ATTRIBUTE):
        region = parent.get_config_variable("region")
    else:
        region = child.get_config_variable("region")
    return None if region is None else str(region)


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


def check_sts_region(parent: Any) -> None:
    """Raise :class:`NoRegionForSTSError` if ``parent``'s STS client would have no region.

    The STS client is ``parent.create_client("sts")``. Without a region botocore sends
    it to the global endpoint (``sts.amazonaws.com``, signed for us-east-1), which works;
    but a configured endpoint URL replaces that, and a request to it cannot be signed
    without a region: every fetch would fail with botocore's bare ``NoRegionError``.
    """
    config = parent.get_default_client_config()
    if config is not None and config.region_name is not None:
        return
    if parent.get_config_variable("region") is not None:
        return
    ignore_endpoints = config.ignore_configured_endpoint_urls if config is not None else None
    if ignore_endpoints is None:
        ignore_endpoints = parent.get_config_variable("ignore_configured_endpoint_urls")
    if ignore_endpoints:
        return
    endpoint_url = ConfiguredEndpointProvider(
        full_config=parent.full_config,
        scoped_config=parent.get_scoped_config(),
        client_name="sts",
    ).provide()
    if endpoint_url is not None:
        raise NoRegionForSTSError()
