"""pytest fixtures for testing code that uses AWS STS, against :class:`LoopbackSTS`.

Enable them in your top-level ``conftest.py`` (or in a test module)::

    pytest_plugins = ["aio_assume_role_lib.testing.pytest_plugin"]

The plugin is opt-in (no ``pytest11`` entry point) on purpose: loading it imports
aiobotocore and aiohttp, which would slow down every pytest run of every project that
has this library installed, and its fixture names would appear in all of them.

Fixtures (all function-scoped):

- ``isolated_aws_env``: an AWS environment that cannot reach your own AWS setup: every
  ``AWS_*`` variable removed (``AWS_PROFILE``, keys, ``AWS_ENDPOINT_URL*``, ...),
  ``AWS_CONFIG_FILE`` and ``AWS_SHARED_CREDENTIALS_FILE`` pointing at files that do not
  exist in a temporary directory (the fixture's value; write them to test profiles),
  ``AWS_EC2_METADATA_DISABLED=true`` so that the credential chain never waits on an
  instance metadata service, and the home directory in that temporary directory too:
  ``HOME`` and ``USERPROFILE`` (so ``Path.home()`` and ``~``), ``XDG_CONFIG_HOME``,
  ``XDG_CACHE_HOME``, ``XDG_DATA_HOME`` and ``XDG_STATE_HOME``. Code under test that
  keeps a cache in ``Path.home() / ".aws/cli/cache"`` (or botocore's and the AWS CLI's
  SSO and credential caches under ``~/.aws``) then neither reads your real entries nor
  writes loopback credentials into them. botocore's SSO token cache directory, which
  botocore computes once when it is imported, is pointed at the temporary home's
  ``.aws/sso/cache`` too.
- ``loopback_sts``: a running :class:`LoopbackSTS`, stopped after the test, with the
  isolated environment pointing at it: ``AWS_ENDPOINT_URL_STS``, its root key as
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, and ``AWS_DEFAULT_REGION=us-east-1``.
  Change ``credential_lifetime``, ``latency`` or queue faults on it at any time.
- ``loopback_parent_session``: an ``aiobotocore.session.AioSession`` made in that
  environment (it signs with the root key).
- ``loopback_aioboto3_session``: an ``aioboto3.Session`` made in that environment; the
  test is skipped when aioboto3 is not installed.
- ``loopback_web_identity_session``: an ``AioSession`` whose own credentials come from
  web identity, as on EKS with IRSA: a token file, ``AWS_ROLE_ARN`` and
  ``AWS_WEB_IDENTITY_TOKEN_FILE`` in the environment (no keys), its
  ``AssumeRoleWithWebIdentity`` calls served by the ``loopback_sts`` server.
- ``loopback_container_session``: an ``AioSession`` whose own credentials come from the
  container-credentials endpoint, as on ECS or EKS Pod Identity:
  ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` in the
  environment (no keys), served by the ``loopback_sts`` server.

- ``loopback_sso_session``: an ``AioSession`` whose own credentials come from SSO (IAM
  Identity Center), as after ``aws sso login``: a profile with an ``sso_session`` in
  ``AWS_CONFIG_FILE``, ``AWS_PROFILE``, the login's cached access token in the temporary
  home's ``.aws/sso/cache``, and ``AWS_ENDPOINT_URL_SSO`` sending the portal's
  ``GetRoleCredentials`` to the ``loopback_sts`` server.
- ``loopback_imds_session``: an ``AioSession`` whose own credentials come from instance
  metadata (IMDSv2), as on EC2: ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` pointing at the
  ``loopback_sts`` server, ``AWS_EC2_METADATA_DISABLED`` removed, no keys.

None of the last four is stabilized: call ``aio_assume_role_lib.stabilize()`` on it as
your service does. Their sources take ``credential_lifetime``, ``source_latency`` and
``fail_next(fault, action=...)`` with ``"AssumeRoleWithWebIdentity"``,
``"ContainerCredentials"``, ``"GetRoleCredentials"`` or ``"InstanceMetadata"``.

To test what your code does as credentials age, without sleeping, use
:func:`aio_assume_role_lib.testing.time_travel` on a session it made with
``assume_role()``: ``time_travel(child, "advisory")`` (or ``"blocking"``, ``"expired"``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._server import LoopbackSTS

if TYPE_CHECKING:
    import aioboto3
    from aiobotocore.session import AioSession

__all__ = [
    "isolated_aws_env",
    "loopback_aioboto3_session",
    "loopback_container_session",
    "loopback_imds_session",
    "loopback_parent_session",
    "loopback_sso_session",
    "loopback_sts",
    "loopback_web_identity_session",
]


@pytest.fixture
def isolated_aws_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """An AWS environment with no ``AWS_*`` variable from outside, and a home directory of
    its own; see the module docstring.

    Returns the temporary directory of ``AWS_CONFIG_FILE`` (``<dir>/config``) and
    ``AWS_SHARED_CREDENTIALS_FILE`` (``<dir>/credentials``; neither file exists), which
    is also ``HOME`` (``USERPROFILE`` on Windows), with the XDG base directories in it.
    """
    directory = tmp_path_factory.mktemp("aws")
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(directory / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(directory / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # The developer's home holds real caches (~/.aws/cli/cache, ~/.aws/sso/cache, ...):
    # code under test must neither read them nor write loopback credentials into them.
    # (On Windows, Python's expanduser reads USERPROFILE before HOMEDRIVE + HOMEPATH.)
    for name in _HOME_VARIABLES:
        monkeypatch.setenv(name, str(directory))
    for name, relative in _XDG_DIRECTORIES.items():
        monkeypatch.setenv(name, str(directory / relative))
    # botocore expands ~/.aws/sso/cache when it is imported, before HOME changed here.
    import botocore.credentials
    import botocore.tokens

    sso_cache = str(directory / _SSO_TOKEN_CACHE)
    monkeypatch.setattr(botocore.credentials.SSOProvider, "_SSO_TOKEN_CACHE_DIR", sso_cache)
    monkeypatch.setattr(botocore.tokens.SSOTokenProvider, "_SSO_TOKEN_CACHE_DIR", sso_cache)
    return directory


_SSO_TOKEN_CACHE = Path(".aws", "sso", "cache")


_HOME_VARIABLES = ("HOME", "USERPROFILE")
# The XDG base directories, where their defaults are under HOME.
_XDG_DIRECTORIES = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_CACHE_HOME": ".cache",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
}


@pytest.fixture
def loopback_sts(isolated_aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackSTS]:
    """A running :class:`LoopbackSTS` that the (isolated) environment points at."""
    del isolated_aws_env  # requested for its effect on the environment
    server = LoopbackSTS()
    server.start()
    try:
        for name, value in server.environ().items():
            monkeypatch.setenv(name, value)
        yield server
    finally:
        server.stop()


@pytest.fixture
def loopback_parent_session(loopback_sts: LoopbackSTS) -> AioSession:
    """An ``AioSession`` that signs with the loopback STS's root key."""
    del loopback_sts
    from aiobotocore.session import AioSession

    return AioSession()


@pytest.fixture
def loopback_aioboto3_session(loopback_sts: LoopbackSTS) -> aioboto3.Session:
    """An ``aioboto3.Session`` that signs with the loopback STS's root key.

    Skips the test when aioboto3 is not installed.
    """
    del loopback_sts
    module = pytest.importorskip("aioboto3")
    session: aioboto3.Session = module.Session()
    return session


def _without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # Environment keys come first in the credential chain.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def loopback_web_identity_session(
    loopback_sts: LoopbackSTS, isolated_aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> AioSession:
    """An ``AioSession`` whose credentials come from web identity (EKS IRSA), served by
    ``loopback_sts``."""
    from aiobotocore.session import AioSession

    token_file = isolated_aws_env / "web-identity-token"
    token_file.write_text("loopback-web-identity-token")
    _without_keys(monkeypatch)
    for name, value in loopback_sts.web_identity_environ(str(token_file)).items():
        monkeypatch.setenv(name, value)
    return AioSession()


@pytest.fixture
def loopback_container_session(
    loopback_sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch
) -> AioSession:
    """An ``AioSession`` whose credentials come from the container-credentials endpoint
    (ECS, EKS Pod Identity), served by ``loopback_sts``."""
    from aiobotocore.session import AioSession

    _without_keys(monkeypatch)
    for name, value in loopback_sts.container_environ().items():
        monkeypatch.setenv(name, value)
    return AioSession()


@pytest.fixture
def loopback_sso_session(
    loopback_sts: LoopbackSTS, isolated_aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> AioSession:
    """An ``AioSession`` whose credentials come from SSO (an ``sso_session`` profile and
    a cached login), its portal served by ``loopback_sts``."""
    from aiobotocore.session import AioSession

    _without_keys(monkeypatch)
    environ = loopback_sts.write_sso_profile(
        isolated_aws_env / "config", isolated_aws_env / _SSO_TOKEN_CACHE
    )
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return AioSession()


@pytest.fixture
def loopback_imds_session(loopback_sts: LoopbackSTS, monkeypatch: pytest.MonkeyPatch) -> AioSession:
    """An ``AioSession`` whose credentials come from instance metadata (IMDSv2, as on EC2),
    served by ``loopback_sts``."""
    from aiobotocore.session import AioSession

    _without_keys(monkeypatch)
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    for name, value in loopback_sts.instance_metadata_environ().items():
        monkeypatch.setenv(name, value)
    return AioSession()
