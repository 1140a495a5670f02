"""A fast OpenAI-compatible streaming server for load tests: the app is measured, not a model.

``python benchmarks/stream_server.py --port P [--tokens N] [--delay S]`` serves
``POST /v1/chat/completions`` (streamed as server-sent events when ``stream`` is true, one
JSON body otherwise) and ``GET /v1/models``.  Each reply is N short words, one chunk every S
seconds, echoing a hash of the prompt so different prompts get different answers.  It is a
real HTTP server on loopback (uvicorn), so the arena's ``openai`` backend goes through its
whole network path.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


def build_app(tokens: int, delay: float, reply: str | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "stub", "object": "model"}]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        body = await request.json()
        prompt = json.dumps(body.get("messages", []))
        seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
        n = min(tokens, int(body.get("max_tokens") or tokens))
        words = [WORDS[(seed + i) % len(WORDS)] for i in range(n)]
        if reply is not None:  # a fixed answer (tests of what the browser does with it)
            words = reply.split(" ")
            n = len(words)
        created = int(time.time())
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "stub",
                    "object": "chat.completion",
                    "created": created,
                    "model": body.get("model", "stub"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": " ".join(words)},
                            "finish_reason": "length" if n == tokens else "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": n},
                }
            )

        async def events() -> AsyncIterator[bytes]:
            for i, word in enumerate(words):
                chunk = {
                    "id": "stub",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body.get("model", "stub"),
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"content": (" " if i else "") + word},
                            "finish_reason": None,
                        }
                    ],
                }
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                await asyncio.sleep(delay)
            last = {
                "id": "stub",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.get("model", "stub"),
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": n},
            }
            yield f"data: {json.dumps(last)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=24, help="words per reply (default 24)")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between chunks")
    parser.add_argument("--reply", help="answer every request with this text instead")
    args = parser.parse_args()
    uvicorn.run(
        build_app(args.tokens, args.delay, args.reply),
        host=args.host,
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
