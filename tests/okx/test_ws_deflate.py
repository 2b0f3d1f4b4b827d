"""The private session's permessage-deflate offer: compression still negotiated with a server
that speaks it (the simulator), with a 9-bit window for what the client compresses."""

from __future__ import annotations

from typing import Any

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import PerMessageDeflate

from reactor.okx.ws import _deflate


async def test_compression_is_negotiated_with_a_small_client_window(sim: Any) -> None:
    async with connect(sim.ws_url, extensions=[_deflate()], ping_interval=None) as ws:
        (ext,) = ws.protocol.extensions
        assert isinstance(ext, PerMessageDeflate)
        assert ext.local_max_window_bits == 9  # what the client compresses
        assert ext.remote_max_window_bits == 15  # what the server sends, as before
        await ws.send("ping")
        assert await ws.recv() == "pong"
