"""hf-genarm's ASGI middleware for vLLM's OpenAI server, against a fake ASGI app (no vLLM needed).

`tests/test_vllm/test_vllm_server.py` runs it inside vLLM's real server, started by `hf-genarm serve`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import tempfile

import pytest

from hf_genarm.integrations._vllm_requests import request_guidance
from hf_genarm.integrations._vllm_server_middleware import GenARMRequestMiddleware, rewrite_request_body
from hf_genarm.integrations._vllm_settings import SERVER_MIDDLEWARE_PATH, server_command

VLLM_400 = {"error": {"message": "1 validation error: {'loc': 'body.vllm_xargs'}", "type": "Bad Request", "code": 400}}


class FakeApp:
    """An ASGI app that records what it received and answers with the given messages."""

    def __init__(self, answer: list[dict]):
        self.answer = answer
        self.scope = self.receive = None
        self.body = b""

    async def __call__(self, scope, receive, send):
        self.scope, self.receive = scope, receive
        if scope["type"] == "http" and scope.get("method") in ("POST", "PUT"):
            while True:
                message = await receive()
                self.body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
        for message in self.answer:
            await send(message)


def _streamed_answer(status: int = 200) -> list[dict]:
    return [
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/event-stream")]},
        {"type": "http.response.body", "body": b"data: one\n\n", "more_body": True},
        {"type": "http.response.body", "body": b"data: two\n\n", "more_body": True},
        {"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False},
    ]


def _vllm_refusal() -> list[dict]:
    body = json.dumps(VLLM_400).encode()
    return [
        {"type": "http.response.start", "status": 400, "headers": [(b"content-length", str(len(body)).encode())]},
        {"type": "http.response.body", "body": body[:10], "more_body": True},
        {"type": "http.response.body", "body": body[10:], "more_body": False},
    ]


def _call(app, body: bytes, path: str = "/v1/completions", method: str = "POST", chunk: int = 7, root_path: str = ""):
    """Send `body` in chunks of `chunk` bytes; returns what the client got and the client's own `receive`."""
    chunks = [body[start : start + chunk] for start in range(0, len(body), chunk)] or [b""]
    incoming = [
        {"type": "http.request", "body": part, "more_body": i < len(chunks) - 1} for i, part in enumerate(chunks)
    ]
    sent = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": method, "path": root_path + path, "root_path": root_path, "headers": headers}
    asyncio.run(app(scope, receive, send))
    return sent, receive


def _request(xargs) -> bytes:
    return json.dumps({"model": "base", "prompt": "Hi", "max_tokens": 4, "vllm_xargs": xargs}).encode()


def test_dict_weights_reach_vllm_as_the_json_text_genarm_reads_and_the_stream_is_untouched():
    app = FakeApp(_streamed_answer())
    sent, _ = _call(GenARMRequestMiddleware(app), _request({"genarm_alpha": {"helpful": 1.5, "harmless": -0.5}}))
    request = json.loads(app.body)
    alpha = request["vllm_xargs"]["genarm_alpha"]
    assert isinstance(alpha, str)  # the type vLLM's `vllm_xargs` schema accepts
    assert request_guidance(request["vllm_xargs"]).alpha == {"helpful": 1.5, "harmless": -0.5}
    assert {key: value for key, value in request.items() if key != "vllm_xargs"} == {
        "model": "base", "prompt": "Hi", "max_tokens": 4
    }  # fmt: skip
    assert dict(app.scope["headers"])[b"content-length"] == str(len(app.body)).encode()
    assert sent == _streamed_answer()  # response messages passed on as they came


def test_a_nan_weight_by_name_reaches_genarms_own_check():
    body, refusal = rewrite_request_body(b'{"vllm_xargs": {"genarm_alpha": {"rm_a": NaN}}}')
    assert refusal is None
    with pytest.raises(ValueError, match=r"`genarm_alpha\['rm_a'\]` is nan"):
        request_guidance(json.loads(body)["vllm_xargs"])


@pytest.mark.parametrize(
    ("body", "path", "method"),
    [
        (_request({"genarm_alpha": [1.0, 0.5], "genarm_beta": 0.5}), "/v1/completions", "POST"),  # schema carries it
        (_request({"other": {"genarm_alpha": 1}}), "/v1/chat/completions", "POST"),  # not a genarm_* argument
        (b'{"prompt": "genarm_alpha", "vllm_xargs": ', "/v1/completions", "POST"),  # not JSON: vLLM answers
        (b'["genarm_alpha", {"vllm_xargs": 1}]', "/v1/responses", "POST"),
        (_request({"genarm_alpha": {"rm_a": 1.0}}), "/v1/embeddings", "POST"),  # another route
        (_request({"genarm_alpha": {"rm_a": 1.0}}), "/v1/completions", "PUT"),
    ],
)
def test_other_requests_reach_vllm_byte_for_byte(body, path, method):
    app = FakeApp(_vllm_refusal())
    sent, _ = _call(GenARMRequestMiddleware(app), body, path=path, method=method)
    assert app.body == body
    assert dict(app.scope["headers"])[b"content-length"] == str(len(body)).encode()
    assert sent == _vllm_refusal()  # vLLM's own answer, 400 included, untouched


def test_other_routes_get_the_clients_own_receive_unbuffered():
    app = FakeApp(_streamed_answer())
    sent, receive = _call(GenARMRequestMiddleware(app), _request({"genarm_alpha": {"a": 1.0}}), path="/v1/embeddings")
    assert app.receive is receive
    sent, receive = _call(GenARMRequestMiddleware(app), b"", path="/health", method="GET")
    assert app.receive is receive and sent == _streamed_answer()


def test_root_path_is_stripped_before_matching_the_route():
    app = FakeApp(_streamed_answer())
    _call(GenARMRequestMiddleware(app), _request({"genarm_alpha": {"a": 1.0}}), root_path="/proxy")
    assert json.loads(app.body)["vllm_xargs"]["genarm_alpha"] == '{"a": 1.0}'


@pytest.mark.parametrize(
    ("xargs", "param", "said"),
    [
        ({"genarm_alpha": None}, "vllm_xargs.genarm_alpha", "is null"),
        ({"genarm_alpha": [[1.0, 0.5]]}, "vllm_xargs.genarm_alpha", "a list holding a list"),
        ({"genarm_alpha": [1.0, {"a": 1}]}, "vllm_xargs.genarm_alpha", "a list holding a JSON object"),
        ({"genarm_alpha": 1.0, "genarm_beta": {"a": 1}}, "vllm_xargs.genarm_beta", "pass a number"),
    ],
)
def test_vllms_400_for_values_its_schema_cannot_carry_names_genarm_the_argument_and_the_fix(xargs, param, said):
    app = FakeApp(_vllm_refusal())
    sent, _ = _call(GenARMRequestMiddleware(app), _request(xargs))
    assert app.body == _request(xargs)  # sent on unchanged: vLLM refuses it itself
    start, body = sent
    assert start["status"] == 400
    assert dict(start["headers"])[b"content-length"] == str(len(body["body"])).encode()
    error = json.loads(body["body"])["error"]
    assert error["param"] == param and error["code"] == 400
    assert error["message"].startswith(f"GenARM: `{param}` ")
    assert said in error["message"]
    if param.endswith("alpha"):
        assert "JSON text" in error["message"] and "in the engine's order" in error["message"]
    assert error["message"].endswith(VLLM_400["error"]["message"])  # vLLM's own message follows


def test_a_flagged_request_that_vllm_does_not_refuse_is_answered_untouched():
    app = FakeApp(_streamed_answer())
    sent, _ = _call(GenARMRequestMiddleware(app), _request({"genarm_alpha": None}))
    assert sent == _streamed_answer()


def test_a_client_leaving_mid_body_is_passed_on():
    app = FakeApp([])
    incoming = [
        {"type": "http.request", "body": b'{"vllm_xargs": {"genarm_', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive():
        return incoming.pop(0)

    async def send(message):
        raise AssertionError(message)

    async def leaving_app(scope, receive, send):
        app.body = [await receive(), await receive()]

    scope = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": []}
    asyncio.run(GenARMRequestMiddleware(leaving_app)(scope, receive, send))
    assert [message["type"] for message in app.body] == ["http.request", "http.disconnect"]


def test_server_command_adds_the_middleware_by_an_import_path_vllm_can_load():
    command = server_command("base", [tempfile.mkdtemp()], server_args=["--middleware", "my.Other"])
    assert command[command.index("--middleware") + 1] == SERVER_MIDDLEWARE_PATH
    assert command[-2:] == ["--middleware", "my.Other"]  # vLLM appends --middleware: the user's adds to it
    module, name = SERVER_MIDDLEWARE_PATH.rsplit(".", 1)  # how vLLM's server imports a --middleware
    assert getattr(importlib.import_module(module), name) is GenARMRequestMiddleware
