"""Credentials from the refresh engine for consumers other than botocore.

Each adapter lives in its own module and needs its extra (nothing is imported here):

* ``aio_assume_role_lib.adapters.httpx.SigV4Auth`` (``[httpx]``) and
  ``aio_assume_role_lib.adapters.httpx2.SigV4Auth`` (``[httpx2]``): SigV4 for httpx clients;
* ``aio_assume_role_lib.adapters.obstore.credential_provider`` (``[obstore]``);
* ``aio_assume_role_lib.adapters.sdk_v4.CredentialsResolver`` (``[sdk-v4]``, Python >= 3.12):
  the AWS SDK for Python v4's identity resolver;
* ``aio_assume_role_lib.adapters.sync.SyncCredentials`` (no extra): a thread-safe sync
  callable for SDKs that ask for credentials from worker threads.

Every adapter reads the session's one refresher: all consumers of a session share one
refresh per credential lifetime.
"""
