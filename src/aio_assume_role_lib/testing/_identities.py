"""The identities the loopback STS knows: its root key and the credentials it issues.

An identity is a key pair (plus a session token for issued credentials) with the ARN and
user id that ``GetCallerIdentity`` shows. Issued credentials expire; how long they live is
decided here (:func:`expiration`), from ``DurationSeconds`` or the server's
``credential_lifetime`` override.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
import string
from dataclasses import dataclass, field

__all__ = [
    "ISSUED_KEY_PREFIX",
    "ROOT_KEY_PREFIX",
    "Identity",
    "expiration",
    "issue",
    "root_identity",
]

_ID_ALPHABET = string.ascii_uppercase + string.digits

# Prefixes no real credential has, so that a secret scanner (and a person) sees at once
# that these are fake: real access key ids begin with "A" (AKIA long-term, ASIA
# temporary; the scanners' rules match those), real session tokens with "IQoJ". The
# shapes stay the real ones' (20 characters of A-Z 0-9; 40; base64), which botocore
# takes as they are.
ROOT_KEY_PREFIX = "LOOPBACKROOT"
ISSUED_KEY_PREFIX = "LOOPBACKTEMP"
_SECRET_PREFIX = "loopback"
_TOKEN_PREFIX = "LOOPBACKSESSIONTOKEN"


@dataclass(frozen=True)
class Identity:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(repr=False)
    expiration: float | None
    arn: str
    user_id: str
    account: str
    partition: str
    is_role_session: bool


def _random_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _stable_id(prefix: str, seed: str, length: int = 17) -> str:
    # Real STS gives a role the same AROA id every time: derive it from the role.
    digest = hashlib.sha256(seed.encode()).digest()
    return prefix + "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[:length])


def _secret_key() -> str:
    return _SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _session_token() -> str:
    return _TOKEN_PREFIX + base64.b64encode(secrets.token_bytes(240)).decode()


def root_identity(account_id: str) -> Identity:
    """A fresh long-term key for ``arn:aws:iam::<account_id>:user/loopback-root``."""
    return Identity(
        access_key_id=_random_id(ROOT_KEY_PREFIX, 20 - len(ROOT_KEY_PREFIX)),
        secret_access_key=_secret_key(),
        session_token=None,
        expiration=None,
        arn=f"arn:aws:iam::{account_id}:user/loopback-root",
        user_id=_stable_id("AIDA", f"{account_id}:loopback-root"),
        account=account_id,
        partition="aws",
        is_role_session=False,
    )


def expiration(received: float, duration: int, credential_lifetime: float | None) -> float:
    """When credentials issued at ``received`` expire (epoch seconds, millisecond precision).

    ``credential_lifetime`` (the server's test override) wins over ``DurationSeconds``.
    """
    seconds = float(duration) if credential_lifetime is None else credential_lifetime
    return math.floor((received + seconds) * 1000) / 1000


def issue(
    *, partition: str, account: str, role_name: str, session_name: str, expires: float
) -> Identity:
    """New temporary credentials for a session of the role, as ``AssumeRole`` issues them."""
    role_id = _stable_id("AROA", f"{partition}:{account}:{role_name}")
    return Identity(
        access_key_id=_random_id(ISSUED_KEY_PREFIX, 20 - len(ISSUED_KEY_PREFIX)),
        secret_access_key=_secret_key(),
        session_token=_session_token(),
        expiration=expires,
        arn=f"arn:{partition}:sts::{account}:assumed-role/{role_name}/{session_name}",
        user_id=f"{role_id}:{session_name}",
        account=account,
        partition=partition,
        is_role_session=True,
    )
