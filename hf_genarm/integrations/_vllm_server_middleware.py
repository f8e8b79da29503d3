"""ASGI middleware for vLLM's OpenAI-compatible server: GenARM's weights by name as a JSON object in `vllm_xargs`.

vLLM's request schema types `vllm_xargs` as `dict[str, str | int | float | list[str | int | float]]`, so it refuses
`"genarm_alpha": {"helpful": 1.0}` with a pydantic dump before GenARM's logits processor sees the request. GenARM
already reads the same weights from their JSON text, so this middleware, which `server_command` (and so
`hf-genarm serve`) adds with vLLM's `--middleware` option, rewrites such a dict into its JSON text before vLLM
validates the request: the dict form is then accepted on the server as it is offline.

Rewriting the request was chosen over rewriting vLLM's error: it makes the natural form work instead of explaining
why it does not. Other `genarm_*` values the schema cannot carry (`null`, nested lists, lists of objects) still
reach vLLM unchanged; for those requests only, and only when vLLM answers 400, a message naming GenARM, the argument
and what to send comes first in the answer (vLLM's own follows: the request may hold other mistakes). Every other
request and response passes through untouched: only POST bodies of the routes whose schema has `vllm_xargs` are
buffered, only a body that mentions `genarm_` is parsed, and a body that is not a JSON object with a `vllm_xargs`
object goes to vLLM byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple

from ._vllm_requests import _ACCEPTED, ALPHA_ARGUMENT

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The routes whose request schema carries `vllm_xargs` (completions, chat completions, responses).
GUIDED_ROUTES = ("/v1/completions", "/v1/chat/completions", "/v1/responses")
XARGS_FIELD = "vllm_xargs"
_ARGUMENT_PREFIX = "genarm_"


# JSON true/false are ints to Python, and pydantic's lax mode takes them as numbers too.
_SCALARS = (str, int, float)


def _carried(value: Any) -> bool:
    """Whether vLLM's `vllm_xargs` schema carries `value`: a string, a number, or a list of them."""
    return isinstance(value, _SCALARS) or (isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value))


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        value = [v for v in value if not isinstance(v, _SCALARS)]
        # Only the items the schema refuses, without recursion: "a list holding a list and null".
        refused = {"null" if v is None else "a JSON object" if isinstance(v, dict) else "a list" for v in value}
        return "a list holding " + " and ".join(sorted(refused))
    return type(value).__name__


class Refusal(NamedTuple):
    """GenARM's answer to a `genarm_*` value that vLLM's `vllm_xargs` schema refuses: the parameter and the message."""

    param: str
    message: str


def _refusal(argument: str, value: Any) -> Refusal:
    wanted = _ACCEPTED if argument == ALPHA_ARGUMENT else "a number"
    return Refusal(
        f"{XARGS_FIELD}.{argument}",
        f"GenARM: `{XARGS_FIELD}.{argument}` is {_json_kind(value)}, which vLLM's `{XARGS_FIELD}` cannot carry (they "
        f"hold strings, numbers and lists of them); pass {wanted}.",
    )


def rewrite_request_body(body: bytes) -> tuple[bytes, Refusal | None]:
    """The request body vLLM should validate, and GenARM's answer should vLLM refuse it (`None`: no GenARM issue).

    A dict `vllm_xargs.genarm_alpha` becomes its JSON text, which GenARM reads as weights by name. Any other
    `genarm_*` value the schema cannot carry is left as it is and yields the message for vLLM's 400. A body with
    nothing to rewrite is returned as the same object.

    Args:
        body (`bytes`): The request body, as the client sent it.

    Returns:
        `tuple[bytes, Refusal | None]`: the body to pass on, and what replaces vLLM's refusal.

    Examples:

    ```python
    >>> body, refusal = rewrite_request_body(b'{"prompt": "Hi", "vllm_xargs": {"genarm_alpha": {"helpful": 1.5}}}')
    >>> json.loads(body)["vllm_xargs"], refusal
    ({'genarm_alpha': '{"helpful": 1.5}'}, None)
    ```
    """
    if _ARGUMENT_PREFIX.encode() not in body:  # the common case: no JSON parsing at all
        return body, None
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return body, None  # vLLM answers a body that is not JSON itself
    xargs = request.get(XARGS_FIELD) if isinstance(request, dict) else None
    if not isinstance(xargs, dict):
        return body, None
    rewritten, refusal = False, None
    for argument, value in xargs.items():
        if not argument.startswith(_ARGUMENT_PREFIX) or _carried(value):
            continue
        if argument == ALPHA_ARGUMENT and isinstance(value, dict):
            # allow_nan: a NaN weight must reach GenARM's own check, which names it, not fail here.
            xargs[argument] = json.dumps(value, allow_nan=True)
            rewritten = True
        elif refusal is None:
            refusal = _refusal(argument, value)
    if not rewritten:
        return body, refusal
    return json.dumps(request, ensure_ascii=False, allow_nan=True).encode(), refusal


class GenARMRequestMiddleware:
    """ASGI middleware that lets vLLM's OpenAI server take GenARM's weights by name as a JSON object.

    `server_command` adds it with `--middleware`; to start vLLM's server yourself, pass
    `--middleware hf_genarm.integrations._vllm_server_middleware.GenARMRequestMiddleware`. See the module's
    docstring for what it rewrites and what it leaves alone.

    Args:
        app (`Callable`): The ASGI application it wraps (vLLM's, given by `app.add_middleware`).

    Examples:

    ```python
    >>> import asyncio
    >>> async def echo(scope, receive, send):  # an ASGI app answering with the body it received
    ...     body = (await receive())["body"]
    ...     await send({"type": "http.response.start", "status": 200, "headers": []})
    ...     await send({"type": "http.response.body", "body": body})
    >>> async def call(app, body):
    ...     sent = []
    ...     async def receive():
    ...         return {"type": "http.request", "body": body, "more_body": False}
    ...     async def send(message):
    ...         sent.append(message)
    ...     await app({"type": "http", "method": "POST", "path": "/v1/completions", "headers": []}, receive, send)
    ...     return sent[-1]["body"]
    >>> asyncio.run(call(GenARMRequestMiddleware(echo), b'{"vllm_xargs": {"genarm_alpha": {"helpful": 2.0}}}'))
    b'{"vllm_xargs": {"genarm_alpha": "{\\\\"helpful\\\\": 2.0}"}}'
    ```
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or _route(scope) not in GUIDED_ROUTES:
            await self.app(scope, receive, send)
            return
        messages, body = await _read_body(receive)
        if messages[-1]["type"] != "http.request":  # the client left while sending: let vLLM see it as it was
            await self.app(scope, _replay(messages, receive), send)
            return
        new_body, refusal = rewrite_request_body(body)
        if new_body is not body:
            scope = {**scope, "headers": _with_content_length(scope.get("headers", []), len(new_body))}
        message = {"type": "http.request", "body": new_body, "more_body": False}
        await self.app(scope, _replay([message], receive), send if refusal is None else _refusing(send, refusal))


def _route(scope: Scope) -> str:
    path = scope.get("path", "")
    root_path = scope.get("root_path", "")
    return path[len(root_path) :] if root_path and path.startswith(root_path) else path


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    """Every message up to the body's last chunk (or a disconnect), and the body."""
    messages, chunks = [], []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives `messages` first, then the client's own (vLLM listens for its disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _with_content_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(name, value) for name, value in headers if name.lower() not in (b"content-length", b"transfer-encoding")]
    return [*kept, (b"content-length", str(length).encode())]


def _refusing(send: Send, refusal: Refusal) -> Send:
    """A `send` that puts GenARM's message first in vLLM's 400 answer; any other answer passes untouched."""
    start: Message | None = None
    chunks: list[bytes] = []

    def _answer() -> bytes:
        # vLLM's own message stays after GenARM's: the request may hold other mistakes it names.
        try:
            original = json.loads(b"".join(chunks))["error"]["message"]
        except (ValueError, KeyError, TypeError):
            original = b"".join(chunks).decode("utf-8", "replace")
        message = f"{refusal.message}\nvLLM's validation: {original}"
        return json.dumps(
            {"error": {"message": message, "type": "Bad Request", "param": refusal.param, "code": 400}}
        ).encode()

    async def refusing_send(event: Message) -> None:
        nonlocal start
        if event["type"] == "http.response.start" and event.get("status") == 400:
            start = event  # held until its body is known: the content length changes
            return
        if start is None or event["type"] != "http.response.body":
            await send(event)
            return
        chunks.append(event.get("body", b""))
        if event.get("more_body", False):
            return
        await send({**start, "headers": _with_content_length(start.get("headers", []), len(body := _answer()))})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return refusing_send
