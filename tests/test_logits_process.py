"""GenARMLogitsProcessor inside stock generate(): every step against a brute-force reference."""

import gc
import itertools

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList, TextStreamer

from hf_genarm import AutoregressiveRewardModel, GenARMLogitsProcessor
from hf_genarm.modeling import positions_from_attention_mask
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

PROMPTS = ["The cat sat on", "Life", "Good friends and good food make"]
ATOL = 1e-5


class Recorder(LogitsProcessor):
    """Calls the processor under test and keeps every (input_ids, scores in, scores out)."""

    def __init__(self, processor):
        self.processor = processor
        self.calls = []

    def __call__(self, input_ids, scores):
        output = self.processor(input_ids, scores)
        self.calls.append((input_ids.clone(), scores.clone(), output.clone()))
        return output


def brute_force_log_probs(model, prefix_ids, prefix_mask, vocab):
    """Full forward on the whole prefix, no cache: next-token log-probs over the shared vocabulary, float32."""
    with torch.no_grad():
        logits = model(
            input_ids=prefix_ids.to(model.device),
            attention_mask=prefix_mask.to(model.device),
            position_ids=positions_from_attention_mask(prefix_mask).to(model.device),
            use_cache=False,
        ).logits[:, -1]
    return torch.log_softmax(logits[:, :vocab].float(), dim=-1).cpu()


def reference_step(input_ids, scores, reward_models, row_weights, prompt_mask, vocab, own_prompts=None):
    """What GenARM must output for one call, computed from scratch."""
    prompt_width = prompt_mask.shape[1]
    generated = input_ids[:, prompt_width:]
    expected = torch.log_softmax(scores[:, :vocab].float(), dim=-1)
    for index, model in enumerate(reward_models):
        own = own_prompts[index] if own_prompts else None
        if own is None:
            ids, mask = input_ids, torch.cat([prompt_mask, torch.ones_like(generated)], dim=1)
        else:
            repeat = input_ids.shape[0] // own["input_ids"].shape[0]
            own_ids = own["input_ids"].repeat_interleave(repeat, 0)
            own_mask = own["attention_mask"].repeat_interleave(repeat, 0)
            ids = torch.cat([own_ids, generated], dim=1)
            mask = torch.cat([own_mask, torch.ones_like(generated)], dim=1)
        expected = expected + row_weights[:, index : index + 1] * brute_force_log_probs(model, ids, mask, vocab)
    if vocab < scores.shape[-1]:
        expected = torch.nn.functional.pad(expected, (0, scores.shape[-1] - vocab), value=-float("inf"))
    return expected


def assert_every_step_matches(recorder, reward_models, row_weights, prompt_mask, vocab=400, own_prompts=None):
    assert recorder.calls, "the processor was never called"
    for input_ids, scores, output in recorder.calls:
        rows = input_ids.shape[0]
        repeat = rows // prompt_mask.shape[0]
        weights = row_weights.repeat_interleave(rows // row_weights.shape[0], 0)
        expected = reference_step(
            input_ids, scores, reward_models, weights, prompt_mask.repeat_interleave(repeat, 0), vocab, own_prompts
        )
        assert output.dtype == torch.float32
        finite = torch.isfinite(expected)
        assert torch.equal(finite, torch.isfinite(output))
        torch.testing.assert_close(output[finite], expected[finite], atol=ATOL, rtol=0)


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(scope="module", params=["gpt2", "llama", "qwen2"])
def models(request):
    architecture = request.param
    base = make_tiny_causal_lm(architecture, seed=0, hidden_size=48)
    reward_model = make_tiny_causal_lm(architecture, seed=1)
    return base, reward_model


def left_padded(tokenizer, prompts=PROMPTS):
    return tokenizer(prompts, return_tensors="pt", padding=True)


def generate(base, inputs, processor, **kwargs):
    kwargs.setdefault("max_new_tokens", 6)
    kwargs.setdefault("pad_token_id", 0)
    processors = processor if isinstance(processor, list) else [processor]
    return base.generate(**inputs, logits_processor=LogitsProcessorList(processors), **kwargs)


DECODING_MODES = {
    "greedy": {"do_sample": False},
    "sampling": {"do_sample": True, "temperature": 0.7, "top_k": 20, "top_p": 0.9},
    "beam_search": {"do_sample": False, "num_beams": 3},
    "beam_sampling": {"do_sample": True, "num_beams": 2, "num_return_sequences": 2},
    "num_return_sequences": {"do_sample": True, "num_return_sequences": 3},
}


@pytest.mark.parametrize("mode", list(DECODING_MODES))
def test_every_step_equals_brute_force(models, tokenizer, mode):
    base, reward_model = models
    inputs = left_padded(tokenizer)
    processor = GenARMLogitsProcessor(
        reward_model, alpha=0.7, beta=0.5, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
    )
    recorder = Recorder(processor)
    torch.manual_seed(1)
    generate(base, inputs, recorder, max_new_tokens=8, **DECODING_MODES[mode])
    assert len(recorder.calls) >= 8
    assert_every_step_matches(recorder, [reward_model], torch.tensor([[0.7 / 0.5]]), inputs["attention_mask"])


def test_beam_search_reorders_rows_and_cache_follows(tokenizer):
    base = make_tiny_causal_lm(seed=3, hidden_size=48)
    reward_model = make_tiny_causal_lm(seed=4)
    inputs = left_padded(tokenizer)
    recorder = Recorder(GenARMLogitsProcessor(reward_model, alpha=2.0, attention_mask=inputs["attention_mask"]))
    generate(base, inputs, recorder, num_beams=4, max_new_tokens=10, do_sample=False)
    reordered = 0
    for (previous, _, _), (current, _, _) in zip(recorder.calls, recorder.calls[1:]):
        if not torch.equal(current[:, : previous.shape[1]], previous):
            reordered += 1
    assert reordered > 0, "beam search never reordered rows; the test would not exercise the cache reordering"
    assert_every_step_matches(recorder, [reward_model], torch.tensor([[2.0]]), inputs["attention_mask"])


def test_assisted_decoding_rejections_do_not_corrupt_cache(models, tokenizer):
    base, reward_model = models
    assistant = make_tiny_causal_lm(seed=9)
    # A random assistant proposing five tokens at a time: most candidates are rejected and cropped.
    assistant.generation_config.assistant_confidence_threshold = 0.0
    assistant.generation_config.num_assistant_tokens = 5
    assistant.generation_config.num_assistant_tokens_schedule = "constant"
    inputs = tokenizer([PROMPTS[0]], return_tensors="pt")
    plain = generate(base, inputs, GenARMLogitsProcessor(reward_model, alpha=0.1), max_new_tokens=12, do_sample=False)
    recorder = Recorder(GenARMLogitsProcessor(reward_model, alpha=0.1))
    assisted = generate(base, inputs, recorder, assistant_model=assistant, max_new_tokens=12, do_sample=False)
    assert torch.equal(assisted, plain)
    lengths = [call[0].shape[1] for call in recorder.calls]
    assert any(later < earlier for earlier, later in itertools.pairwise(lengths)), "no candidate was ever taken back"
    assert_every_step_matches(recorder, [reward_model], torch.tensor([[0.1]]), inputs["attention_mask"])


def test_left_padded_batch_equals_each_prompt_alone(models, tokenizer):
    base, reward_model = models
    inputs = left_padded(tokenizer)
    batched = generate(
        base,
        inputs,
        GenARMLogitsProcessor(reward_model, alpha=1.0, beta=0.3, attention_mask=inputs["attention_mask"]),
        max_new_tokens=10,
        do_sample=False,
    )
    prompt_width = inputs["input_ids"].shape[1]
    for row, prompt in enumerate(PROMPTS):
        single = tokenizer([prompt], return_tensors="pt")
        alone = generate(
            base, single, GenARMLogitsProcessor(reward_model, alpha=1.0, beta=0.3), max_new_tokens=10, do_sample=False
        )
        assert torch.equal(batched[row, prompt_width:], alone[0, single["input_ids"].shape[1] :])


def test_seeded_sampling_is_reproducible_and_samples_the_guided_distribution(tokenizer):
    base, reward_model = make_tiny_causal_lm(seed=0), make_tiny_causal_lm(seed=1)
    inputs = left_padded(tokenizer)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        recorder = Recorder(GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"]))
        outputs.append(generate(base, inputs, recorder, do_sample=True, top_k=50, max_new_tokens=12))
        # Each sampling step drew from the GenARM distribution, not the base's: every call equals brute force.
        assert len(recorder.calls) == 12
        assert_every_step_matches(recorder, [reward_model], torch.tensor([[1.0]]), inputs["attention_mask"])
    assert torch.equal(outputs[0], outputs[1])


def test_streamer_eos_and_max_new_tokens(tokenizer, capsys):
    base, reward_model = make_tiny_causal_lm(seed=0), make_tiny_causal_lm(seed=1)
    inputs = tokenizer([PROMPTS[0]], return_tensors="pt")
    width = inputs["input_ids"].shape[1]
    processor = GenARMLogitsProcessor(reward_model, alpha=1.0)
    streamed = generate(base, inputs, processor, streamer=TextStreamer(tokenizer), max_new_tokens=7, do_sample=False)
    assert streamed.shape[1] == width + 7
    printed = capsys.readouterr().out
    assert tokenizer.decode(streamed[0, width:]).strip() in printed

    stop_token = int(streamed[0, width + 3])
    first_stop = int((streamed[0, width:] == stop_token).nonzero()[0])
    stopped = generate(base, inputs, processor, eos_token_id=stop_token, max_new_tokens=7, do_sample=False)
    assert stopped.shape[1] == width + first_stop + 1
    assert torch.equal(stopped[0], streamed[0, : width + first_stop + 1])


def test_several_reward_models_and_per_row_alpha(tokenizer):
    base = make_tiny_causal_lm(seed=0, hidden_size=48)
    reward_models = [make_tiny_causal_lm(seed=1), make_tiny_causal_lm("llama", seed=2)]
    inputs = left_padded(tokenizer)
    alpha = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.5, -0.5]])
    recorder = Recorder(
        GenARMLogitsProcessor(reward_models, alpha=alpha, beta=0.5, attention_mask=inputs["attention_mask"])
    )
    batched = generate(base, inputs, recorder, max_new_tokens=8, do_sample=False)
    assert_every_step_matches(recorder, reward_models, alpha / 0.5, inputs["attention_mask"])
    width = inputs["input_ids"].shape[1]
    for row, prompt in enumerate(PROMPTS):
        single = tokenizer([prompt], return_tensors="pt")
        alone = generate(
            base,
            single,
            GenARMLogitsProcessor(reward_models, alpha=alpha[row].tolist(), beta=0.5),
            max_new_tokens=8,
            do_sample=False,
        )
        assert torch.equal(batched[row, width:], alone[0, single["input_ids"].shape[1] :])


@pytest.mark.parametrize("mode", ["greedy", "sampling", "beam_search"])
def test_zero_alpha_gives_exactly_the_base_output(tokenizer, mode):
    base = make_tiny_causal_lm(seed=0)
    reward_models = [make_tiny_causal_lm(seed=1), make_tiny_causal_lm(seed=2)]
    inputs = left_padded(tokenizer)
    torch.manual_seed(5)
    plain = base.generate(**inputs, max_new_tokens=8, pad_token_id=0, **DECODING_MODES[mode])
    torch.manual_seed(5)
    processor = GenARMLogitsProcessor(reward_models, alpha=[0.0, 0.0], attention_mask=inputs["attention_mask"])
    guided = generate(base, inputs, processor, max_new_tokens=8, **DECODING_MODES[mode])
    assert torch.equal(plain, guided)


def test_greedy_guidance_takes_the_argmax_of_the_brute_force_guided_distribution(tokenizer):
    base, reward_model = make_tiny_causal_lm(seed=0), make_tiny_causal_lm(seed=1)
    inputs = left_padded(tokenizer)
    alpha, new_tokens = 5.0, 8
    guided = generate(
        base,
        inputs,
        GenARMLogitsProcessor(reward_model, alpha=alpha, attention_mask=inputs["attention_mask"]),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
    )
    # Greedy decoding by hand: each token is the argmax of log p_base + alpha * log p_RM over the whole prefix.
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    eos = base.generation_config.eos_token_id
    for _ in range(new_tokens):
        scores = brute_force_log_probs(base, ids, mask, 400)
        scores += alpha * brute_force_log_probs(reward_model, ids, mask, 400)
        scores[:, eos] = -float("inf")  # min_new_tokens
        top = scores.topk(2, dim=-1).values
        assert (top[:, 0] - top[:, 1]).min() > 1e-4, "a near tie would make the reference ambiguous"
        ids = torch.cat([ids, scores.argmax(-1, keepdim=True)], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    assert torch.equal(guided, ids)
    plain = base.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
    assert not torch.equal(plain, guided), "alpha=5 should move at least one greedy choice"


def test_reward_model_reads_its_own_prompt(models, tokenizer):
    base, reward_model = models
    inputs = left_padded(tokenizer)
    own_prompts = tokenizer([f"Question: {prompt}? Answer:" for prompt in PROMPTS], return_tensors="pt", padding=True)
    own = {"input_ids": own_prompts["input_ids"], "attention_mask": own_prompts["attention_mask"]}
    second = make_tiny_causal_lm(seed=7)
    recorder = Recorder(
        GenARMLogitsProcessor(
            [reward_model, second],
            alpha=[1.0, 0.5],
            attention_mask=inputs["attention_mask"],
            reward_model_inputs=[own, None],
        )
    )
    generate(base, inputs, recorder, num_beams=2, max_new_tokens=6, do_sample=False)
    assert_every_step_matches(
        recorder, [reward_model, second], torch.tensor([[1.0, 0.5]]), inputs["attention_mask"], own_prompts=[own, None]
    )


def test_reused_processor_resets_on_a_new_generate_call(tokenizer):
    base, reward_model = make_tiny_causal_lm(seed=0), make_tiny_causal_lm(seed=1)
    inputs = left_padded(tokenizer)
    reused = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"])
    first = generate(base, inputs, reused, max_new_tokens=8, do_sample=False)
    again = generate(base, inputs, reused, max_new_tokens=8, do_sample=False)
    fresh = generate(
        base,
        inputs,
        GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"]),
        max_new_tokens=8,
        do_sample=False,
    )
    assert torch.equal(first, fresh) and torch.equal(again, fresh)

    other = tokenizer(["Please be kind"], return_tensors="pt")
    reused.reset(attention_mask=other["attention_mask"])
    recorder = Recorder(reused)
    generate(base, other, recorder, max_new_tokens=5, do_sample=False)
    assert_every_step_matches(recorder, [reward_model], torch.tensor([[1.0]]), other["attention_mask"])
    # A third call with other prompts of the same shape and no padding is noticed without reset().
    third = tokenizer(["Never trust"], return_tensors="pt")
    recorder = Recorder(reused)
    reused.reset(attention_mask=third["attention_mask"])
    generate(base, third, recorder, max_new_tokens=5, do_sample=False)
    assert_every_step_matches(recorder, [reward_model], torch.tensor([[1.0]]), third["attention_mask"])


def test_new_call_is_noticed_without_reset(tokenizer):
    base, reward_model = make_tiny_causal_lm(seed=0), make_tiny_causal_lm(seed=1)
    processor = GenARMLogitsProcessor(reward_model)
    first = tokenizer(["The cat sat"], return_tensors="pt")
    second = tokenizer(["Life is so"], return_tensors="pt")
    assert first["input_ids"].shape == second["input_ids"].shape
    generate(base, first, processor, max_new_tokens=5, do_sample=False)
    recorder = Recorder(processor)
    generate(base, second, recorder, max_new_tokens=5, do_sample=False)
    assert_every_step_matches(recorder, [reward_model], torch.tensor([[1.0]]), second["attention_mask"])


@pytest.mark.parametrize(("base_rows", "reward_rows"), [(416, 400), (400, 416), (416, 448)])
def test_padded_vocabularies(tokenizer, base_rows, reward_rows):
    base = make_tiny_causal_lm(vocab_size=base_rows, seed=0)
    reward_model = make_tiny_causal_lm(vocab_size=reward_rows, seed=1)
    inputs = left_padded(tokenizer)
    recorder = Recorder(
        GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"], tokenizer=tokenizer)
    )
    output = generate(base, inputs, recorder, max_new_tokens=6, do_sample=True, top_k=0)
    assert int(output.max()) < len(tokenizer)
    assert recorder.calls[0][2].shape[-1] == base_rows
    assert torch.isinf(recorder.calls[0][2][:, len(tokenizer) :]).all()
    assert_every_step_matches(recorder, [reward_model], torch.tensor([[1.0]]), inputs["attention_mask"], vocab=400)


def test_padded_base_without_tokenizer_asks_for_it(tokenizer):
    base = make_tiny_causal_lm(vocab_size=416, seed=0)
    processor = GenARMLogitsProcessor(make_tiny_causal_lm(vocab_size=400, seed=1))
    with pytest.raises(ValueError, match="tokenizer="):
        generate(base, tokenizer(["The cat"], return_tensors="pt"), processor)


def test_reward_model_with_another_tokenizer_is_refused(tokenizer):
    other_tokenizer = make_tiny_tokenizer(vocab_size=380)
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=1), tokenizer=other_tokenizer)
    with pytest.raises(ValueError, match=r"another tokenizer.*vocabulary size 400 \(base\) vs 380"):
        GenARMLogitsProcessor(reward_model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="another tokenizer"):
        GenARMLogitsProcessor(
            make_tiny_causal_lm(seed=1), tokenizer=tokenizer, reward_model_tokenizers=[other_tokenizer]
        )
    same = AutoregressiveRewardModel(make_tiny_causal_lm(seed=1), tokenizer=make_tiny_tokenizer())
    GenARMLogitsProcessor(same, tokenizer=tokenizer)


def test_reward_model_smaller_than_tokenizer_is_refused(tokenizer):
    with pytest.raises(ValueError, match="fewer than the 400 tokens"):
        GenARMLogitsProcessor(make_tiny_causal_lm(vocab_size=384, seed=1), tokenizer=tokenizer)
    small_tokenizer_metadata = AutoregressiveRewardModel(make_tiny_causal_lm(vocab_size=384), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="fewer than the 400 tokens"):
        GenARMLogitsProcessor(small_tokenizer_metadata)
    base = make_tiny_causal_lm(vocab_size=400, seed=0)
    with pytest.raises(ValueError, match="384 output rows"):
        generate(
            base,
            tokenizer(["The cat"], return_tensors="pt"),
            GenARMLogitsProcessor(make_tiny_causal_lm(vocab_size=384, seed=1)),
        )


@pytest.mark.parametrize(
    ("base_dtype", "reward_dtype"), [(torch.float32, torch.bfloat16), (torch.bfloat16, torch.float32)]
)
def test_mixed_dtypes(tokenizer, base_dtype, reward_dtype):
    base = make_tiny_causal_lm(seed=0).to(base_dtype)
    reward_model = make_tiny_causal_lm(seed=1).to(reward_dtype)
    inputs = left_padded(tokenizer)
    recorder = Recorder(GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"]))
    generate(base, inputs, recorder, max_new_tokens=5, do_sample=False)
    for input_ids, scores, output in recorder.calls:
        assert output.dtype == torch.float32 and torch.isfinite(output).all()
        expected = reference_step(
            input_ids, scores, [reward_model], torch.ones(input_ids.shape[0], 1), inputs["attention_mask"], 400
        )
        # bfloat16 caches and full forwards round differently; the float32 combination itself is exact.
        torch.testing.assert_close(output, expected, atol=0.1, rtol=0)


def test_adapter_and_reward_model_wrapper_work_as_reward_models(tokenizer):
    from peft import LoraConfig, get_peft_model

    base = make_tiny_causal_lm(seed=0)
    backbone = make_tiny_causal_lm(seed=1)
    lora = get_peft_model(backbone, LoraConfig(r=4, target_modules=["c_attn"], init_lora_weights=False))
    wrapped = AutoregressiveRewardModel(lora, tokenizer=tokenizer)
    inputs = left_padded(tokenizer)
    recorder = Recorder(GenARMLogitsProcessor(wrapped, attention_mask=inputs["attention_mask"], tokenizer=tokenizer))
    generate(base, inputs, recorder, max_new_tokens=5, do_sample=False)
    assert_every_step_matches(recorder, [wrapped], torch.tensor([[1.0]]), inputs["attention_mask"])


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"beta": 0.0}, ValueError, "`beta`"),
        ({"beta": -1.0}, ValueError, "`beta`"),
        ({"beta": "1"}, TypeError, "`beta`"),
        ({"alpha": float("nan")}, ValueError, "`alpha` must be finite"),
        ({"alpha": [1.0, float("inf")]}, ValueError, "`alpha`"),
        ({"alpha": [1.0, 2.0, 3.0]}, ValueError, "one weight per reward model"),
        ({"alpha": torch.ones(2, 3)}, ValueError, "one weight per reward model"),
        ({"alpha": "strong"}, TypeError, "`alpha`"),
        ({"alpha": 1.0, "beta": 1e-40}, ValueError, r"`alpha` / `beta` reaches inf"),
        ({"alpha": [1e38, 1.0]}, ValueError, r"`alpha` / `beta` reaches 1e\+38"),
        ({"alpha": [3e5, 0.0], "beta": 0.1}, ValueError, r"`alpha` / `beta` reaches 3e\+06"),
        ({"attention_mask": [[1, 1]]}, TypeError, "`attention_mask`"),
        ({"attention_mask": torch.ones(3, 4), "alpha": torch.ones(2, 2)}, ValueError, "Batch sizes disagree"),
        ({"reward_model_inputs": [None]}, ValueError, "`reward_model_inputs`"),
    ],
)
def test_bad_input_is_refused_in_init(kwargs, error, pattern):
    reward_models = [make_tiny_causal_lm(seed=1), make_tiny_causal_lm(seed=2)]
    with pytest.raises(error, match=pattern):
        GenARMLogitsProcessor(reward_models, **kwargs)


def test_bad_reward_models_are_refused():
    from transformers import GPT2Config, GPT2Model

    with pytest.raises(ValueError, match="empty"):
        GenARMLogitsProcessor([])
    with pytest.raises(ValueError, match=r"reward_models\[0\].*no language-model head"):
        GenARMLogitsProcessor(GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=400)))
    with pytest.raises(TypeError, match=r"reward_models\[1\]"):
        GenARMLogitsProcessor([make_tiny_causal_lm(), "gpt2"])


def test_mask_of_another_batch_is_refused_at_the_first_step(tokenizer):
    base, reward_model = make_tiny_causal_lm(seed=0), make_tiny_causal_lm(seed=1)
    inputs = left_padded(tokenizer)
    processor = GenARMLogitsProcessor(reward_model, attention_mask=torch.ones(2, inputs["input_ids"].shape[1]))
    with pytest.raises(ValueError, match="per-prompt inputs"):
        generate(base, inputs, processor)


def test_processor_state_does_not_grow_across_calls(tokenizer):
    base, reward_model = make_tiny_causal_lm(seed=0), make_tiny_causal_lm(seed=1)
    inputs = left_padded(tokenizer)
    processor = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"])
    for _ in range(3):
        generate(base, inputs, processor, max_new_tokens=4, do_sample=False)
    gc.collect()
    cache = processor._streams[0].cache
    assert cache.get_seq_length() == inputs["input_ids"].shape[1] + 3


def test_long_generation_past_the_cache_spare_room_equals_brute_force(tokenizer):
    # The reward model's cache preallocates 256 positions beyond the prompt; decoding past them reallocates it,
    # and beam sampling reorders the rows before and after.
    base = make_tiny_causal_lm(seed=5, hidden_size=48, max_positions=512)
    reward_model = make_tiny_causal_lm(seed=6, max_positions=512)
    inputs = left_padded(tokenizer, PROMPTS[:2])
    recorder = Recorder(GenARMLogitsProcessor(reward_model, alpha=0.5, attention_mask=inputs["attention_mask"]))
    torch.manual_seed(2)
    generate(base, inputs, recorder, max_new_tokens=270, min_new_tokens=270, do_sample=True, num_beams=2)
    assert len(recorder.calls) == 270
    assert_every_step_matches(recorder, [reward_model], torch.tensor([[0.5]]), inputs["attention_mask"])


def test_vocabulary_recorded_in_metadata_never_bans_base_tokens_silently(tokenizer):
    # The reward model's metadata records the 400-token tokenizer; the base scores 416 ids, which only the base
    # tokenizer can say are padded rows rather than real tokens.
    base = make_tiny_causal_lm(vocab_size=416, seed=0)
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(vocab_size=416, seed=1), tokenizer=tokenizer)
    inputs = tokenizer([PROMPTS[0]], return_tensors="pt")
    with pytest.raises(ValueError, match=r"would ban the base's ids 400\.\.415.*`tokenizer=`"):
        generate(base, inputs, GenARMLogitsProcessor(reward_model))
    recorder = Recorder(GenARMLogitsProcessor(reward_model, tokenizer=tokenizer))
    generate(base, inputs, recorder, max_new_tokens=3)
    assert torch.isinf(recorder.calls[0][2][:, 400:]).all()


def swapped_tokens_tokenizer(tokenizer):
    """The same tokens and size as `tokenizer`, two of them with each other's ids."""
    import json

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    first, second = (token for token, index in vocab.items() if index in (300, 301))
    vocab[first], vocab[second] = vocab[second], vocab[first]
    special = {name: getattr(tokenizer, name) for name in ("bos_token", "eos_token", "pad_token")}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(data)), **special)


def test_tokenizer_with_same_size_but_other_tokens_or_special_tokens_is_refused(tokenizer):
    swapped = swapped_tokens_tokenizer(tokenizer)
    assert len(swapped) == len(tokenizer)
    with pytest.raises(ValueError, match="same vocabulary size but different tokens"):
        GenARMLogitsProcessor(
            AutoregressiveRewardModel(make_tiny_causal_lm(seed=1), tokenizer=swapped), tokenizer=tokenizer
        )
    with pytest.raises(ValueError, match="same vocabulary size but different tokens"):
        GenARMLogitsProcessor(make_tiny_causal_lm(seed=1), tokenizer=tokenizer, reward_model_tokenizers=[swapped])
    other_special = make_tiny_tokenizer()
    other_special.pad_token = "."
    assert other_special.get_vocab() == tokenizer.get_vocab()
    with pytest.raises(ValueError, match=r"pad_token '<\|endoftext\|>' \(base\) vs '\.' \(reward model\)"):
        GenARMLogitsProcessor(make_tiny_causal_lm(seed=1), tokenizer=tokenizer, reward_model_tokenizers=[other_special])


def test_plain_causal_lm_with_tokenizer_says_it_cannot_be_checked(tokenizer, caplog):
    import logging

    logging.Logger.warning_once.cache_clear()
    with caplog.at_level(logging.WARNING):
        GenARMLogitsProcessor(
            AutoregressiveRewardModel(make_tiny_causal_lm(seed=1), tokenizer=tokenizer), tokenizer=tokenizer
        )
        GenARMLogitsProcessor(make_tiny_causal_lm(seed=1), tokenizer=tokenizer, reward_model_tokenizers=[tokenizer])
    assert "cannot be checked" not in caplog.text
    with caplog.at_level(logging.WARNING):
        GenARMLogitsProcessor([make_tiny_causal_lm(seed=1)], tokenizer=tokenizer)
    assert "`reward_models[0]` (GPT2LMHeadModel) records no tokenizer, so it cannot be checked" in caplog.text


def test_reward_model_in_training_mode_guides_without_dropout(tokenizer, caplog):
    import logging

    base = make_tiny_causal_lm(seed=0)
    reward_model = make_tiny_causal_lm(seed=1).train()
    assert reward_model.config.resid_pdrop > 0, "dropout must be on for this test to mean anything"
    inputs = left_padded(tokenizer)
    logging.Logger.warning_once.cache_clear()
    outputs = []
    with caplog.at_level(logging.WARNING):
        for seed in (1, 2):
            torch.manual_seed(seed)
            recorder = Recorder(GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"]))
            outputs.append(generate(base, inputs, recorder, max_new_tokens=6, do_sample=False))
    assert "is in training mode; GenARM runs its forward passes in eval mode" in caplog.text
    assert torch.equal(outputs[0], outputs[1])
    assert reward_model.training and all(module.training for module in reward_model.modules())
    reward_model.eval()
    assert_every_step_matches(recorder, [reward_model], torch.tensor([[1.0]]), inputs["attention_mask"])


def count_forwards(model):
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    return calls


def test_position_limit_is_checked_before_decoding(tokenizer):
    base = make_tiny_causal_lm(seed=0)
    reward_model = make_tiny_causal_lm(seed=1, max_positions=16)
    long_prompt = tokenizer([" ".join(["cat"] * 20)], return_tensors="pt")
    assert long_prompt["input_ids"].shape[1] > 16
    forwards = count_forwards(reward_model)
    with pytest.raises(ValueError, match=r"`reward_models\[0\]` reads at most 16 positions.*the prompt alone need"):
        generate(base, long_prompt, GenARMLogitsProcessor(reward_model), max_new_tokens=2)
    assert not forwards, "the reward model ran before the limit was checked"
    prompt = tokenizer(["The cat sat on the warm"], return_tensors="pt")
    width = prompt["input_ids"].shape[1]
    # generate() does not tell processors its max_new_tokens: given to the processor, it is checked up front.
    with pytest.raises(ValueError, match=rf"the prompt and max_new_tokens=20 need {width + 20}"):
        generate(base, prompt, GenARMLogitsProcessor(reward_model, max_new_tokens=20), max_new_tokens=20)
    # Under assisted decoding the assistant's inner generate() runs the processor first; the limit is still
    # the one given.
    with pytest.raises(ValueError, match=rf"the prompt and max_new_tokens=20 need {width + 20}"):
        generate(
            base,
            prompt,
            GenARMLogitsProcessor(reward_model, max_new_tokens=20),
            max_new_tokens=20,
            assistant_model=make_tiny_causal_lm(seed=9),
        )
    assert not forwards, "the reward model ran before the limit was checked"
    # Without it, generation stops with the same error at the step that would pass the limit, before that forward.
    with pytest.raises(ValueError, match=rf"the prompt and {16 - width + 1} generated tokens need 17"):
        generate(base, prompt, GenARMLogitsProcessor(reward_model), max_new_tokens=20)
    assert len(forwards) == 16 - width + 1, "a forward ran past the position limit"
    forwards.clear()
    with pytest.raises(ValueError, match="`max_new_tokens` must be a positive int"):
        GenARMLogitsProcessor(reward_model, max_new_tokens=0)
    generate(base, prompt, GenARMLogitsProcessor(reward_model), max_new_tokens=16 - width)
    # Called outside generate(), the processor stops at the limit with the same error, not an IndexError.
    processor, ids = GenARMLogitsProcessor(reward_model), prompt["input_ids"]
    with pytest.raises(ValueError, match=rf"the prompt and {16 - width + 1} generated tokens need 17"):
        for _ in range(20):
            processor(ids, torch.zeros(1, 400))
            ids = torch.cat([ids, torch.tensor([[5]])], dim=1)


def test_encoder_decoder_and_meta_reward_models_are_refused_at_construction():
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    t5 = T5ForConditionalGeneration(T5Config(vocab_size=400, d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2))
    with pytest.raises(ValueError, match=r"`reward_models\[0\]` \(T5ForConditionalGeneration\) is an encoder-decoder"):
        GenARMLogitsProcessor(t5)
    with torch.device("meta"):
        on_meta = GPT2LMHeadModel(GPT2Config(vocab_size=400, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match=r"`reward_models\[0\]` has weights on the `meta` device"):
        GenARMLogitsProcessor(on_meta)
