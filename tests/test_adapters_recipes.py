"""The recipes of docs/other-clients.md for SDKs with their own Bedrock clients, against
a loopback Bedrock runtime that checks SigV4 (service ``bedrock``) with the keys the
loopback STS issued: OpenAI's ``bedrock()`` provider fed by SyncCredentials, and
Anthropic's ``AsyncAnthropicBedrock`` signing through the httpx2 adapter.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiobotocore.session import AioSession

from aio_assume_role_lib import assume_role
from aio_assume_role_lib.testing import LoopbackSTS

from ._s3_loopback import LoopbackS3
from .conftest import ROLE_A, caller_arn

pytestmark = pytest.mark.anyio


@pytest.fixture
def bedrock(sts: LoopbackSTS) -> Iterator[LoopbackS3]:
    with LoopbackS3(sts) as server:
        yield server


@pytest.fixture
async def child(sts: LoopbackSTS) -> Any:
    return await assume_role(AioSession(), ROLE_A)


async def test_openai_bedrock_provider_takes_sync_credentials(
    sts: LoopbackSTS, bedrock: LoopbackS3, child: Any
) -> None:
    openai = pytest.importorskip("openai")
    from openai.providers import bedrock as bedrock_provider

    from aio_assume_role_lib.adapters.sync import SyncCredentials

    client = openai.AsyncOpenAI(
        provider=bedrock_provider(
            endpoint="runtime",
            region="us-east-1",
            base_url=f"{bedrock.endpoint_url}/openai/v1",
            credential_provider=SyncCredentials(child),
        )
    )
    async with client:
        for _ in range(2):
            answer = await client.chat.completions.create(
                model="openai.gpt-oss-20b-1:0", messages=[{"role": "user", "content": "hi"}]
            )
            assert answer.choices[0].message.content == "hello"
        # After an invalidation the provider hands over the new credentials.
        credentials = await child.get_credentials()
        assert credentials.invalidate()
        await client.chat.completions.create(
            model="openai.gpt-oss-20b-1:0", messages=[{"role": "user", "content": "hi"}]
        )
    calls = bedrock.calls
    assert [call.outcome for call in calls] == ["ok"] * 3
    assert {call.caller_arn for call in calls} == {await caller_arn(child)}
    assert calls[0].access_key_id == calls[1].access_key_id != calls[2].access_key_id
    assert sts.assume_role_count == 2


async def test_anthropic_bedrock_signs_through_the_httpx2_adapter(
    sts: LoopbackSTS, bedrock: LoopbackS3, child: Any
) -> None:
    anthropic = pytest.importorskip("anthropic")
    httpx2 = pytest.importorskip("httpx2")

    from aio_assume_role_lib.adapters.httpx2 import SigV4Auth

    class AsyncAnthropicBedrockWithRole(anthropic.AsyncAnthropicBedrock):  # type: ignore[misc]
        async def _prepare_request(self, request: Any) -> None:
            pass

    client = AsyncAnthropicBedrockWithRole(
        aws_region="us-east-1",
        base_url=bedrock.endpoint_url,
        http_client=httpx2.AsyncClient(auth=SigV4Auth(child, "bedrock", region="us-east-1")),
    )
    async with client:
        message = await client.messages.create(
            model="anthropic.claude-sonnet-4-5-20250929-v1:0",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
        )
    assert message.content[0].text == "hello"
    (call,) = bedrock.calls
    assert call.outcome == "ok"
    assert call.caller_arn == await caller_arn(child)
    assert sts.assume_role_count == 1


async def test_anthropic_bedrock_without_the_wrapper_cannot_take_a_child(
    sts: LoopbackSTS, child: Any
) -> None:
    """Why the recipe needs its wrapper: the client takes keys, a profile or nothing
    (then boto3's default chain, in a thread); there is no parameter for a session."""
    anthropic = pytest.importorskip("anthropic")
    with pytest.raises(TypeError):
        anthropic.AsyncAnthropicBedrock(session=child)  # type: ignore[call-arg]
