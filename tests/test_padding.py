"""Left padding: the processor checks the prompt mask it is given, or infers it, or refuses; never guesses."""

import pytest
import torch
from transformers import pipeline

from hf_genarm import GenARMLogitsProcessor
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

# Different lengths, so the batch is left-padded; none starts or holds the pad id.
PROMPTS = ["The cat sat on", "Life", "Good friends and good food make"]
NEW_TOKENS = 8


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def models():
    return make_tiny_causal_lm("llama", seed=0, hidden_size=48), make_tiny_causal_lm(seed=1)


def guided_generate(base, inputs, processor, **kwargs):
    kwargs.setdefault("do_sample", False)
    return base.generate(
        **inputs,
        logits_processor=[processor],
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        pad_token_id=0,
        **kwargs,
    )


def alone(base, reward_model, tokenizer, prompt, **kwargs):
    single = tokenizer([prompt], return_tensors="pt")
    output = guided_generate(
        base, single, GenARMLogitsProcessor(reward_model, alpha=2.0, tokenizer=tokenizer), **kwargs
    )
    return output[0, single["input_ids"].shape[1] :]


@pytest.mark.parametrize("pad_source", ["tokenizer", "pad_token_id"])
def test_mask_is_inferred_from_leading_pad_ids(models, tokenizer, pad_source):
    base, reward_model = models
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    assert (inputs["attention_mask"] == 0).any(), "the batch must be padded for this test to mean anything"
    told = {"tokenizer": tokenizer} if pad_source == "tokenizer" else {"pad_token_id": tokenizer.pad_token_id}
    batched = guided_generate(base, inputs, GenARMLogitsProcessor(reward_model, alpha=2.0, **told))
    width = inputs["input_ids"].shape[1]
    for row, prompt in enumerate(PROMPTS):
        assert torch.equal(batched[row, width:], alone(base, reward_model, tokenizer, prompt))


def test_first_real_token_after_padding_is_scored_as_in_the_unpadded_row(models, tokenizer):
    _, reward_model = models
    padded = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    scores = torch.randn(len(PROMPTS), 400)
    batched = GenARMLogitsProcessor(reward_model, tokenizer=tokenizer)(padded["input_ids"], scores)
    for row, prompt in enumerate(PROMPTS):
        single = tokenizer([prompt], return_tensors="pt")["input_ids"]
        expected = GenARMLogitsProcessor(reward_model, tokenizer=tokenizer)(single, scores[row : row + 1])
        torch.testing.assert_close(batched[row : row + 1], expected, atol=1e-5, rtol=0)


def test_pipeline_batches_give_each_prompt_its_own_result(models, tokenizer):
    base, reward_model = models
    generator = pipeline("text-generation", model=base, tokenizer=tokenizer, batch_size=3)
    processor = GenARMLogitsProcessor(reward_model, alpha=2.0, tokenizer=tokenizer)
    results = generator(
        PROMPTS,
        logits_processor=[processor],
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        do_sample=False,
        pad_token_id=0,
        return_tensors=True,
    )
    for prompt, result in zip(PROMPTS, results):
        generated = torch.tensor(result[0]["generated_token_ids"])[-NEW_TOKENS:]
        assert torch.equal(generated, alone(base, reward_model, tokenizer, prompt))


def test_several_prompts_without_mask_or_pad_id_are_refused(models, tokenizer):
    base, reward_model = models
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match=r"several different prompts, and without a pad id.*pad_token_id="):
        guided_generate(base, inputs, GenARMLogitsProcessor(reward_model))
    # One prompt (repeated by generate() for num_return_sequences) has no padding to tell.
    single = tokenizer([PROMPTS[0]], return_tensors="pt")
    guided_generate(base, single, GenARMLogitsProcessor(reward_model), num_beams=2, num_return_sequences=2)


def test_ambiguous_pad_ids_are_refused(models, tokenizer):
    base, reward_model = models
    processor = GenARMLogitsProcessor(reward_model, tokenizer=tokenizer)
    bos_like = tokenizer([tokenizer.bos_token + prompt for prompt in PROMPTS], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match="every row starts with the pad id 0"):
        guided_generate(base, bos_like, processor)
    inner = tokenizer([f"Life{tokenizer.eos_token} is short", "The cat sat"], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match=r"row 0 holds the pad id 0 at column \d+, after its text"):
        guided_generate(base, inner, processor)
    # The mask resolves both: the BOS-like pad id opens every row, the inner EOS is text.
    for inputs in (bos_like, inner):
        told = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"], tokenizer=tokenizer)
        guided_generate(base, inputs, told)


def test_right_padding_is_refused_before_decoding(tokenizer):
    reward_model = make_tiny_causal_lm(seed=1)
    right = make_tiny_tokenizer(padding_side="right")(PROMPTS, return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match=r"`attention_mask` row \d has padding after its text.*padding_side = 'left'"):
        GenARMLogitsProcessor(reward_model, attention_mask=right["attention_mask"])
    own = {"input_ids": right["input_ids"], "attention_mask": right["attention_mask"]}
    with pytest.raises(ValueError, match=r"reward_model_inputs\[0\]\['attention_mask'\]` row \d has padding after"):
        GenARMLogitsProcessor(reward_model, reward_model_inputs=[own])
    with pytest.raises(ValueError, match="row 1 masks every column"):
        GenARMLogitsProcessor(reward_model, attention_mask=torch.tensor([[1, 1], [0, 0]]))
    base = make_tiny_causal_lm(seed=0)
    with pytest.raises(ValueError, match="after its text"):
        guided_generate(base, right, GenARMLogitsProcessor(reward_model, tokenizer=tokenizer))


def test_mask_of_fewer_prompts_is_not_taken_as_expansion(models, tokenizer):
    base, reward_model = models
    # Two different prompts of one length (no padding) and a one-row mask: not num_return_sequences copies.
    inputs = tokenizer(["The cat sat", "Life is so"], return_tensors="pt", padding=True)
    assert inputs["attention_mask"].all()
    one_row = inputs["attention_mask"][:1]
    with pytest.raises(ValueError, match="not 2 copies of 1 prompts"):
        guided_generate(base, inputs, GenARMLogitsProcessor(reward_model, attention_mask=one_row))
    with pytest.raises(ValueError, match="not 2 copies of 1 prompts"):
        own = {"input_ids": inputs["input_ids"][:1]}
        guided_generate(base, inputs, GenARMLogitsProcessor(reward_model, reward_model_inputs=[own]))
    # Real expansion is still derived from the mask.
    single = tokenizer([PROMPTS[0]], return_tensors="pt")
    processor = GenARMLogitsProcessor(reward_model, attention_mask=single["attention_mask"])
    guided_generate(base, single, processor, do_sample=True, num_return_sequences=3)


@pytest.mark.parametrize("told", [{}, {"pad_token_id": 0}])
def test_reused_processor_does_not_keep_a_stale_mask(models, tokenizer, told):
    base, reward_model = models
    first = tokenizer(["The cat sat on", "Life"], return_tensors="pt", padding=True)
    second = tokenizer(["Life", "The cat sat on"], return_tensors="pt", padding=True)
    assert first["input_ids"].shape == second["input_ids"].shape
    assert not torch.equal(first["attention_mask"], second["attention_mask"])
    processor = GenARMLogitsProcessor(reward_model, alpha=2.0, attention_mask=first["attention_mask"], **told)
    guided_generate(base, first, processor)
    guided_generate(base, first, processor)  # the same prompts again: the mask still fits
    with pytest.raises(ValueError, match=r"reset\(attention_mask=\.\.\.\)"):
        guided_generate(base, second, processor)
    processor.reset(attention_mask=second["attention_mask"])
    reused = guided_generate(base, second, processor)
    fresh = guided_generate(
        base, second, GenARMLogitsProcessor(reward_model, alpha=2.0, attention_mask=second["attention_mask"])
    )
    assert torch.equal(reused, fresh)


def test_masks_hold_only_zeros_and_ones():
    reward_model = make_tiny_causal_lm(seed=1)
    with pytest.raises(ValueError, match="`attention_mask` must hold only zeros"):
        GenARMLogitsProcessor(reward_model, attention_mask=torch.tensor([[0, 2, 2]]))
    with pytest.raises(ValueError, match=r"`reward_model_inputs\[0\]\['attention_mask'\]` must hold only zeros"):
        own = {"input_ids": torch.tensor([[4, 5]]), "attention_mask": torch.tensor([[0.5, 1.0]])}
        GenARMLogitsProcessor(reward_model, reward_model_inputs=[own])


def test_reward_model_prompts_without_mask_follow_the_same_rule(models, tokenizer):
    base, reward_model = models
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    own = tokenizer([f"Question: {prompt}? Answer:" for prompt in PROMPTS], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match=r"`reward_model_inputs\[0\]\['input_ids'\]` holds several different"):
        GenARMLogitsProcessor(reward_model, reward_model_inputs=[{"input_ids": own["input_ids"]}])
    inferred = GenARMLogitsProcessor(
        reward_model, tokenizer=tokenizer, reward_model_inputs=[{"input_ids": own["input_ids"]}]
    )
    given = GenARMLogitsProcessor(reward_model, tokenizer=tokenizer, reward_model_inputs=[dict(own)])
    assert torch.equal(guided_generate(base, inputs, inferred), guided_generate(base, inputs, given))


def test_pad_token_id_is_checked():
    reward_model = make_tiny_causal_lm(seed=1)
    with pytest.raises(TypeError, match="`pad_token_id`"):
        GenARMLogitsProcessor(reward_model, pad_token_id="0")
    with pytest.raises(ValueError, match="differs from the pad id 0 of `tokenizer`"):
        GenARMLogitsProcessor(reward_model, pad_token_id=3, tokenizer=make_tiny_tokenizer())


def test_embedded_models_in_a_left_padded_batch_equal_each_prompt_alone():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_genarm import AutoregressiveRewardModel
    from hf_genarm.assets import default_asset_path

    tokenizer = AutoTokenizer.from_pretrained(default_asset_path("base"), padding_side="left")
    base = AutoModelForCausalLM.from_pretrained(default_asset_path("base")).eval()
    reward_model = AutoregressiveRewardModel.from_pretrained(default_asset_path("arm-sentiment")).eval()
    prompts = ["You will", "The weather today is", "A friend", "Your next meal will be very", "Luck"]
    generate_kwargs = {"max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS, "do_sample": False}
    generate_kwargs["pad_token_id"] = tokenizer.pad_token_id

    def processor(**kwargs):
        return GenARMLogitsProcessor(reward_model, alpha=1.0, beta=0.5, tokenizer=tokenizer, **kwargs)

    expected = []
    for prompt in prompts:
        single = tokenizer([prompt], return_tensors="pt")
        output = base.generate(**single, logits_processor=[processor()], **generate_kwargs)
        expected.append(output[0, -NEW_TOKENS:])

    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    assert (inputs["attention_mask"] == 0).any()
    with_mask = base.generate(
        **inputs, logits_processor=[processor(attention_mask=inputs["attention_mask"])], **generate_kwargs
    )
    without_mask = base.generate(**inputs, logits_processor=[processor()], **generate_kwargs)
    generator = pipeline("text-generation", model=base, tokenizer=tokenizer, batch_size=len(prompts))
    piped = generator(prompts, logits_processor=[processor()], return_tensors=True, **generate_kwargs)
    for row, tokens in enumerate(expected):
        assert torch.equal(with_mask[row, -NEW_TOKENS:], tokens), f"mask given, row {row}"
        assert torch.equal(without_mask[row, -NEW_TOKENS:], tokens), f"mask inferred, row {row}"
        assert torch.equal(torch.tensor(piped[row][0]["generated_token_ids"][-NEW_TOKENS:]), tokens), f"pipeline {row}"


FIXED_WIDTH_PADDINGS = [
    pytest.param({"padding": "max_length", "max_length": 12}, id="max_length"),
    pytest.param({"padding": True, "pad_to_multiple_of": 8}, id="pad_to_multiple_of"),
]


@pytest.mark.parametrize("padding", FIXED_WIDTH_PADDINGS)
def test_reused_mask_of_longer_prompts_padded_to_one_width_is_refused(models, tokenizer, padding):
    base, reward_model = models
    longer = tokenizer(["The cat sat on", "Good friends and"], return_tensors="pt", **padding)
    shorter = tokenizer(["Life", "A cat"], return_tensors="pt", **padding)
    assert longer["input_ids"].shape == shorter["input_ids"].shape
    processor = GenARMLogitsProcessor(
        reward_model, alpha=2.0, attention_mask=longer["attention_mask"], **{"tokenizer": tokenizer}
    )
    guided_generate(base, longer, processor)
    # Every row of `shorter` opens with pad ids under the old mask's ones: padding read as text, not a BOS.
    with pytest.raises(ValueError, match=r"row 0 opens with \d+ pad id\(s\) 0 .*reset\(attention_mask=\.\.\.\)"):
        guided_generate(base, shorter, processor)
    processor.reset(attention_mask=shorter["attention_mask"])
    reused = guided_generate(base, shorter, processor)
    width = shorter["input_ids"].shape[1]
    for row, prompt in enumerate(["Life", "A cat"]):
        assert torch.equal(reused[row, width:], alone(base, reward_model, tokenizer, prompt))


@pytest.mark.parametrize("padding", FIXED_WIDTH_PADDINGS)
def test_bos_equal_to_pad_under_the_mask_still_works(models, tokenizer, padding):
    base, reward_model = models
    assert tokenizer.bos_token_id == tokenizer.pad_token_id
    prompts = [tokenizer.bos_token + prompt for prompt in ["Life", "A cat"]]
    inputs = tokenizer(prompts, return_tensors="pt", **padding)
    processor = GenARMLogitsProcessor(
        reward_model, alpha=2.0, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
    )
    batched = guided_generate(base, inputs, processor)
    width = inputs["input_ids"].shape[1]
    for row, prompt in enumerate(prompts):
        single = tokenizer([prompt], return_tensors="pt")
        told = GenARMLogitsProcessor(
            reward_model, alpha=2.0, attention_mask=single["attention_mask"], tokenizer=tokenizer
        )
        expected = guided_generate(base, single, told)[0, single["input_ids"].shape[1] :]
        assert torch.equal(batched[row, width:], expected)
    # The mask of longer BOS-opened prompts reads the BOS and pad ids of these as text: refused.
    longer = tokenizer([tokenizer.bos_token + "The cat sat on"] * 2, return_tensors="pt", **padding)
    stale = GenARMLogitsProcessor(reward_model, attention_mask=longer["attention_mask"], tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"opens with \d+ pad id\(s\)"):
        guided_generate(base, inputs, stale)


def test_pad_rows_differing_in_count_or_with_a_distinct_bos_are_refused(models, tokenizer):
    base, reward_model = models
    inputs = tokenizer(["The cat sat on", "Good friends and"], return_tensors="pt", padding="max_length", max_length=12)
    starts = inputs["attention_mask"].argmax(-1)
    # Each row one token shorter, under the old mask: exactly one pad id opens every row, as a BOS equal to the pad
    # token would. Indistinguishable from a BOS when the BOS is the pad token...
    shifted = {key: value.clone() for key, value in inputs.items()}
    shifted["input_ids"][torch.arange(2), starts] = tokenizer.pad_token_id
    told = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"], tokenizer=tokenizer)
    guided_generate(base, shifted, told)
    # ...but not when only one row shifted (rows disagree),
    one_row = {key: value.clone() for key, value in inputs.items()}
    one_row["input_ids"][0, starts[0]] = tokenizer.pad_token_id
    told = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"], tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"rows open with \[1, 0\]"):
        guided_generate(base, one_row, told)
    # ...nor when the tokenizer's BOS is another token, so a pad id never opens text.
    distinct_bos = make_tiny_tokenizer()
    distinct_bos.bos_token = distinct_bos.convert_ids_to_tokens(1)
    assert distinct_bos.bos_token_id != distinct_bos.pad_token_id and len(distinct_bos) == len(tokenizer)
    told = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"], tokenizer=distinct_bos)
    with pytest.raises(ValueError, match="BOS differs from its pad token"):
        guided_generate(base, shifted, told)


def test_distinct_bos_lets_fixed_width_padding_be_inferred(models, tokenizer):
    base, reward_model = models
    distinct_bos = make_tiny_tokenizer()
    distinct_bos.bos_token = distinct_bos.convert_ids_to_tokens(1)
    inputs = tokenizer(["Life", "A cat"], return_tensors="pt", padding="max_length", max_length=10)
    with pytest.raises(ValueError, match="every row starts with the pad id 0"):
        guided_generate(base, inputs, GenARMLogitsProcessor(reward_model, alpha=2.0, tokenizer=tokenizer))
    inferred = guided_generate(base, inputs, GenARMLogitsProcessor(reward_model, alpha=2.0, tokenizer=distinct_bos))
    told = GenARMLogitsProcessor(reward_model, alpha=2.0, attention_mask=inputs["attention_mask"], tokenizer=tokenizer)
    assert torch.equal(inferred, guided_generate(base, inputs, told))


def test_inputs_embeds_are_refused_with_what_to_pass_instead(models, tokenizer):
    base, reward_model = models
    inputs = tokenizer(["The cat sat on"], return_tensors="pt")
    embeds = base.get_input_embeddings()(inputs["input_ids"])
    processor = GenARMLogitsProcessor(reward_model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"`inputs_embeds=`.*Pass the prompt as `input_ids=`"):
        base.generate(
            inputs_embeds=embeds,
            attention_mask=inputs["attention_mask"],
            logits_processor=[processor],
            max_new_tokens=3,
            pad_token_id=0,
        )


@pytest.mark.parametrize("told", ["tokenizer", "pad_token_id"])
def test_a_row_of_padding_only_is_refused_as_with_its_mask(models, tokenizer, told):
    _, reward_model = models
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    inputs["input_ids"][1] = tokenizer.pad_token_id
    inputs["attention_mask"][1] = 0
    with pytest.raises(ValueError, match="row 1 masks every column; each prompt needs at least one token"):
        GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"])
    pad = {"tokenizer": tokenizer} if told == "tokenizer" else {"pad_token_id": tokenizer.pad_token_id}
    processor = GenARMLogitsProcessor(reward_model, **pad)
    with pytest.raises(ValueError, match="inferred from the pad id 0 row 1 masks every column; each prompt needs"):
        processor(inputs["input_ids"], torch.randn(len(PROMPTS), 400))
