"""With REDIS_URL, frames cross processes through Redis pub/sub and the cache is Redis."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.core.cache import cache

from conversations.actions.inbound import receive_inbound_message
from realtime.events import clinic_group

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


async def test_a_frame_reaches_a_subscriber_of_another_layer_instance(clinic):
    # A layer built from the settings but shared with nothing here: what another server process has.
    elsewhere = RedisPubSubChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
    channel = await elsewhere.new_channel()
    await elsewhere.group_add(clinic_group(clinic.pk), channel)
    try:
        await database_sync_to_async(receive_inbound_message)(clinic=clinic, phone="5511987654321", content="Oi")
        frames = [json.loads((await asyncio.wait_for(elsewhere.receive(channel), 5))["text"]) for _ in range(2)]
        assert [(f["type"], f["seq"]) for f in frames] == [("conversation:new", 1), ("message:new", 2)]
    finally:
        await elsewhere.group_discard(clinic_group(clinic.pk), channel)
        await elsewhere.flush()


def test_the_cache_is_redis():
    from django_redis import get_redis_connection

    cache.set("taskmed-test-key", {"ok": 1}, 30)
    assert cache.get("taskmed-test-key") == {"ok": 1}
    assert get_redis_connection("default").exists(cache.make_key("taskmed-test-key"))
    cache.delete("taskmed-test-key")
