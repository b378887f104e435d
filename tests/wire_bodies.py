"""Vendor answers written out byte for byte, for tests that need a body FakeProvider would not
send (counts it refuses to script, say) through its ``body=``."""

from __future__ import annotations

import json


def answer_and_stream(kind: str, prompt: int, completion: int) -> tuple[bytes, bytes]:
    """A whole answer and a whole stream of one chunk, "hi", from a vendor of provider kind
    ``kind``, each reporting these token counts."""
    if kind in ("openai", "azure-openai"):
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        answer = {
            "id": "c1",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": usage,
        }
        chunk = {"id": "c1", "choices": [{"index": 0, "delta": {"content": "hi"}}]}
        events = [chunk, {"id": "c1", "choices": [], "usage": usage}]
        stream = b"".join(b"data: %s\n\n" % json.dumps(e).encode() for e in events)
        return json.dumps(answer).encode(), stream + b"data: [DONE]\n\n"
    if kind == "anthropic":
        message = {"id": "msg_1", "model": "m", "content": [], "usage": {}}
        answer = {
            **message,
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": prompt, "output_tokens": completion},
        }
        events = [
            {"type": "message_start", "message": {**message, "usage": {"input_tokens": prompt}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "hi"},
            },
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": completion},
            },
            {"type": "message_stop"},
        ]
        stream = b"".join(
            b"event: %s\ndata: %s\n\n" % (e["type"].encode(), json.dumps(e).encode())
            for e in events
        )
        return json.dumps(answer).encode(), stream
    candidate = {"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}
    answer = {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": completion},
    }
    return json.dumps(answer).encode(), b"data: %s\n\n" % json.dumps(answer).encode()
