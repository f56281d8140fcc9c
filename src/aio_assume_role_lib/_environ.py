"""The environment variables through which an AWS SDK may pick its credentials.

The CLI removes them from the environment of the command it runs with an assumed role,
and the loopback STS's ``serve`` command unsets them in the shell it points at itself:
any one of them left over from an earlier role, profile, container or web identity could
make the SDK use other credentials, or break the ones it is given.
"""

from __future__ import annotations

__all__ = ["CREDENTIAL_VARIABLES"]

# botocore's credential providers read each of these; the other AWS SDKs read the same
# names.
CREDENTIAL_VARIABLES = (
    # the environment provider: keys, token (botocore reads AWS_SECURITY_TOKEN first),
    # expiry and account (botocore routes some services by it)
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_ACCOUNT_ID",
    # the sync CLI's name for the expiry, and aws-vault's
    "AWS_CREDENTIALS_EXPIRATION",
    "AWS_SESSION_EXPIRATION",
    # profiles
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    # web identity
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    # the container-credentials endpoint
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    # the EC2 CLI tools' credentials file
    "AWS_CREDENTIAL_FILE",
)
