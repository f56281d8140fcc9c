"""Assumed-role session chaining with non-blocking, single-flight credential refresh.

``await assume_role(session, role_arn)`` returns a child session (``AioSession`` or
``aioboto3.Session``, like its parent) whose credentials are fetched from STS on first use
and refreshed in the background before they expire, once for every task that uses them.
"""

import logging

from ._assume import (
    assume_role,
    patch_aioboto3,
    patch_aiobotocore,
    set_sharing_limits,
    sharing_stats,
)
from ._cache import JSONFileCache
from ._credentials import AssumeRoleCredentials, credentials_of
from ._endpoint import ContainerCredentialsEndpoint, serve_container_credentials
from ._metrics import configure_telemetry
from ._names import (
    AUTOMATIC_ROLE_SESSION_NAME,
    generate_lambda_session_name,
    get_assumed_role_session_arn,
    get_role_arn,
)
from ._pool import ClientPool, ClientPoolClosedError
from ._refresh import RefreshPolicy, RefreshStats, RefreshTimeoutError, UnusableCredentialsError
from ._stabilize import stabilize
from ._tenant_client import TenantClientError
from ._version import __version__

# A library's logging is its user's to configure (the logging HOWTO's advice).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AUTOMATIC_ROLE_SESSION_NAME",
    "ClientPool",
    "ClientPoolClosedError",
    "ContainerCredentialsEndpoint",
    "AssumeRoleCredentials",
    "JSONFileCache",
    "RefreshPolicy",
    "RefreshStats",
    "RefreshTimeoutError",
    "TenantClientError",
    "UnusableCredentialsError",
    "__version__",
    "assume_role",
    "configure_telemetry",
    "credentials_of",
    "generate_lambda_session_name",
    "get_assumed_role_session_arn",
    "get_role_arn",
    "patch_aioboto3",
    "patch_aiobotocore",
    "serve_container_credentials",
    "set_sharing_limits",
    "sharing_stats",
    "stabilize",
]
