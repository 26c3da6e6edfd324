"""A candidate whose connections fail: the real service listens on PORT + 1, and a relay on
PORT passes every request through except, after the first AFTER API requests, one in ten,
whose connection it closes without an answer. The service's own metrics never see those, so
no alert fires; only the proxy does (and retries them, hiding them from clients)."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys

PORT = int(os.environ.get("PORT", "8000"))
AFTER = 30
_seen = [0]


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
    app_r, app_w = await asyncio.open_connection("127.0.0.1", PORT + 1)
    back = asyncio.create_task(_copy(app_r, client_w))
    try:
        # HTTP/1.1 without pipelining: each read is the next request, sent once the last was answered.
        while data := await client_r.read(65536):
            if data.startswith(b"GET /v1/"):
                _seen[0] += 1
                if _seen[0] > AFTER and random.random() < 0.1:  # noqa: S311
                    client_w.transport.abort()
                    return
            app_w.write(data)
            await app_w.drain()
    except ConnectionError:
        pass
    finally:
        back.cancel()
        app_w.close()


async def _main() -> None:
    server = await asyncio.start_server(_relay, "0.0.0.0", PORT)  # noqa: S104  # nosec B104
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    service = subprocess.Popen(
        [sys.executable, "-m", "services.api_gateway"], env={**os.environ, "PORT": str(PORT + 1)}
    )
    try:
        asyncio.run(_main())
    finally:
        service.terminate()
