"""`manage.py listen` fetches a gap from /api/events/ when a frame arrives ahead of a missing one."""

import asyncio
import io
import json

import httpx
import pytest

from conversations.actions.inbound import receive_inbound_message
from conversations.management.commands.listen import Command
from realtime.ordering import SeqOrder
from realtime.tests.test_consumer import access_token

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_frame_ahead_of_a_gap_makes_listen_fetch_the_missing_ones(live_server, settings, clinic, member):
    settings.LONGPOLL_SECONDS = 1
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="um", external_id="w1")  # seq 1, 2
    receive_inbound_message(clinic=clinic, phone="5511987654321", content="dois", external_id="w2")  # seq 3
    token = access_token(member)
    command = Command(stdout=io.StringIO())
    command.printed, command.max_frames = 0, None
    order = SeqOrder(last=0)
    assert order.push({"type": "message:new", "seq": 3}) == [] and order.gap == (0, 2)

    async def fill():
        async with httpx.AsyncClient(base_url=live_server.url, headers={"Authorization": f"Bearer {token}"}) as http:
            await command.fill(http, order)

    asyncio.run(fill())
    printed = [line for line in command.stdout.getvalue().splitlines() if line]
    assert [json.loads(line)["seq"] for line in printed] == [1, 2, 3]
    assert order.last == 3 and order.gap is None
