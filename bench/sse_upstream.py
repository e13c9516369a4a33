#!/usr/bin/env python3
"""A reference streaming upstream for the benchmark: replays the mock upstream's stream fixture
(crates/mock-upstream/fixtures/chat_completion_stream.txt) with the same cadence as
`mcp-mock-upstream --fixed --ttft-ms T --token-interval-ms I`, but with TCP_NODELAY set on
every connection, as production HTTP servers do.

Why it exists: without TCP_NODELAY, a small SSE event written while the previous one is still
unacknowledged waits in the kernel (Nagle) until the reader's delayed ACK (~40 ms on Linux).
That inflates time to first token by tens of milliseconds on whichever hop lacks it, and the
benchmark would then be measuring the kernel's timers, not the gateway. bench/run.py measures
streaming against both this upstream and the repository's mock upstream and reports both.

Usage: sse_upstream.py --listen 127.0.0.1:PORT --ttft-ms 20 --token-interval-ms 10 [--fixture PATH]
Serves POST /v1/chat/completions (always streams), GET /v1/models, GET /health; HTTP/1.1
keep-alive; Python standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates" / "mock-upstream" / "fixtures"


def load_events(path: Path) -> list[tuple[str, bytes]]:
    """The fixture's events as (kind, chunked-encoded frame)."""
    events = []
    for raw in path.read_text().split("\n\n"):
        raw = raw.strip()
        if not raw:
            continue
        data = raw[len("data:") :].strip() if raw.startswith("data:") else raw
        if data == "[DONE]":
            kind = "done"
        else:
            choices = json.loads(data).get("choices") or []
            if not choices:
                kind = "usage"
            elif choices[0].get("finish_reason"):
                kind = "finish"
            elif "role" in (choices[0].get("delta") or {}):
                kind = "role"
            else:
                kind = "content"
        frame = f"data: {data}\n\n".encode()
        events.append((kind, b"%x\r\n" % len(frame) + frame + b"\r\n"))
    return events


def response(status: str, content_type: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body
    )


async def serve(args: argparse.Namespace) -> None:
    events = load_events(Path(args.fixture))
    models = response("200 OK", "application/json", (FIXTURES / "models.json").read_bytes())
    health = response("200 OK", "application/json", b'{"status":"healthy","service":"bench-sse-upstream"}')
    not_found = response("404 Not Found", "application/json", b'{"error":{"message":"not found"}}')
    stream_head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    ttft, interval = args.ttft_ms / 1000, args.token_interval_ms / 1000

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, path, _ = lines[0].split(b" ", 2)
                length = 0
                for line in lines[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                if method == b"POST" and path.endswith(b"/chat/completions"):
                    writer.write(stream_head)
                    seen_content = False
                    for kind, frame in events:
                        if kind == "content" and not seen_content:
                            delay, seen_content = ttft, True
                        elif kind in ("role", "done"):
                            delay = 0
                        else:
                            delay = interval
                        if delay:
                            await asyncio.sleep(delay)
                        writer.write(frame)
                        await writer.drain()
                    writer.write(b"0\r\n\r\n")
                elif path.endswith(b"/models"):
                    writer.write(models)
                elif path == b"/health":
                    writer.write(health)
                else:
                    writer.write(not_found)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    host, port = args.listen.rsplit(":", 1)
    server = await asyncio.start_server(handle, host, int(port), backlog=1024)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


def main() -> None:
    ap = argparse.ArgumentParser(description="reference SSE upstream with TCP_NODELAY")
    ap.add_argument("--listen", required=True)
    ap.add_argument("--ttft-ms", type=int, default=20)
    ap.add_argument("--token-interval-ms", type=int, default=10)
    ap.add_argument("--fixture", default=str(FIXTURES / "chat_completion_stream.txt"))
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
