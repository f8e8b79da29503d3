"""A vLLM request's GenARM arguments and the server command, checked without vLLM or an engine.

`request_guidance` is what `GenARMVLLMLogitsProcessor.validate_params` runs in vLLM's front end (an HTTP 400 on
the server); `RequestGuidance.weights` is what the worker resolves against the reward models it serves.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from hf_genarm.integrations._vllm_requests import refuse_numbers_vllm_cannot_send, request_guidance
from hf_genarm.integrations._vllm_settings import server_command

NAMES = ["rm_a", "rm_b"]


@pytest.mark.parametrize(
    ("extra_args", "message"),
    [
        ({"genarm_alpha": [math.nan, math.nan]}, r"`genarm_alpha\[0\]` is nan; every reward-model weight must be"),
        ({"genarm_alpha": [1.0, math.inf]}, r"`genarm_alpha\[1\]` is inf"),
        ({"genarm_alpha": math.nan}, r"`genarm_alpha` is nan"),
        ({"genarm_alpha": {"rm_a": math.nan}}, r"`genarm_alpha\['rm_a'\]` is nan"),
        ({"genarm_alpha": '{"rm_b": NaN}'}, r"`genarm_alpha\['rm_b'\]` is nan"),
        ({"genarm_alpha": ["1.0", "2.0"]}, r"`genarm_alpha\[0\]` must be a float, got str"),
        ({"genarm_alpha": "strong"}, r"`genarm_alpha` must be a float, .*JSON text.*not a JSON object"),
        ({"genarm_alpha": "[1.0, 2.0]"}, r"not a JSON object"),
        ({"genarm_alpha": True}, r"`genarm_alpha` must be .*; got bool"),
        ({"genarm_alpha": np.bool_(True)}, r"`genarm_alpha` must be .*; got bool"),
        ({"genarm_alpha": [np.bool_(True), 1.0]}, r"`genarm_alpha\[0\]` must be a float, got bool"),
        ({"genarm_alpha": torch.ones(2)}, r"`genarm_alpha` must be .*; got Tensor"),
        ({"genarm_alpha": []}, r"`genarm_alpha` is an empty list"),
        ({"genarm_alpha": {1: 1.0}}, r"`genarm_alpha` names reward models by string; got the key 1"),
        ({"genarm_alpha": 1.0, "genarm_beta": 0.0}, r"`genarm_beta` must be a finite float > 0"),
        ({"genarm_alpha": 1.0, "genarm_beta": "1"}, r"`genarm_beta` must be a float, got str"),
        ({"genarm_beta": 1.0}, r"`genarm_beta` was given without `genarm_alpha`"),
        ({"genarm_alpha": {"rm_a": 2e6}}, r"`genarm_alpha` / `genarm_beta` reaches"),
    ],
)
def test_malformed_arguments_are_refused_naming_the_element(extra_args, message):
    with pytest.raises(ValueError, match=message) as refused:
        request_guidance(extra_args)
    assert "[[" not in str(refused.value)  # the weights are named one by one, never echoed as a tensor


@pytest.mark.parametrize(
    "alpha",
    [
        [np.float32(0.5), np.int64(2)],
        [np.float64(0.5), 2],
        (0.5, 2.0),
        {"rm_a": np.float32(0.5), "rm_b": np.int64(2)},
        '{"rm_a": 0.5, "rm_b": 2}',
    ],
)
def test_numpy_scalars_tuples_and_json_text_give_the_same_weights(alpha):
    guidance = request_guidance({"genarm_alpha": alpha, "genarm_beta": np.float32(0.5)})
    assert guidance.beta == 0.5 and type(guidance.beta) is float
    assert guidance.weights(NAMES).tolist() == [1.0, 4.0]


def test_raw_numpy_numbers_vllm_cannot_send_are_refused_naming_the_fix():
    for extra_args, label in (
        ({"genarm_alpha": [1.0, np.float32(0.5)]}, r"genarm_alpha\[1\]` is a numpy.float32"),
        ({"genarm_alpha": {"rm_a": np.int64(2)}}, r"genarm_alpha\['rm_a'\]` is a numpy.int64"),
        ({"genarm_alpha": np.float16(1)}, r"genarm_alpha` is a numpy.float16"),
        ({"genarm_alpha": 1.0, "genarm_beta": np.float32(0.5)}, r"genarm_beta` is a numpy.float32"),
    ):
        with pytest.raises(ValueError, match=label + ".*`float\\(value\\)`.*request_args"):
            refuse_numbers_vllm_cannot_send(extra_args)
    refuse_numbers_vllm_cannot_send({"genarm_alpha": [np.float64(0.5), 2], "genarm_beta": np.float64(1.0)})
    refuse_numbers_vllm_cannot_send(None)


def test_engine_dependent_checks_are_left_to_the_worker_with_their_own_message():
    too_many = request_guidance({"genarm_alpha": [1.0, 2.0, 3.0]})  # the front end cannot count reward models
    with pytest.raises(ValueError, match=r"`genarm_alpha` holds 3 weight\(s\) but this engine serves 2 reward model"):
        too_many.weights(NAMES)
    with pytest.raises(ValueError, match=r"`genarm_alpha` holds 1 weight\(s\) but this engine serves 2") as refused:
        request_guidance({"genarm_alpha": [1.0]}).weights(NAMES)
    assert "per row" not in str(refused.value)
    with pytest.raises(ValueError, match=r"names reward model\(s\) \['rm_c'\] that this engine does not serve"):
        request_guidance({"genarm_alpha": {"rm_c": 1.0}}).weights(NAMES)
    assert request_guidance({"genarm_alpha": {"rm_b": 1.0}}).weights(NAMES).tolist() == [0.0, 1.0]
    assert request_guidance({"genarm_alpha": 0.0}).weights(NAMES) is None  # all zero: unguided
    assert request_guidance({"genarm_alpha": {}}).weights(NAMES) is None
    assert request_guidance({"temperature_note": 1}) is None and request_guidance(None) is None


def test_server_command_asks_for_processed_log_probabilities_unless_told_otherwise(tmp_path):
    command = server_command("base", [tmp_path], server_args=["--port", "8001"])
    assert command[command.index("--logprobs-mode") + 1] == "processed_logprobs"
    for chosen in (["--logprobs-mode", "raw_logprobs"], ["--logprobs-mode=raw_logits"]):
        command = server_command("base", [tmp_path], server_args=chosen)
        assert command.count("--logprobs-mode") + sum(a.startswith("--logprobs-mode=") for a in command) == 1
        assert command[-len(chosen) :] == chosen
    assert "--logprobs-mode" not in server_command("base", [tmp_path], logprobs_mode=None)
    assert json.loads(command[command.index("--additional-config") + 1])["genarm"]["reward_models"]
