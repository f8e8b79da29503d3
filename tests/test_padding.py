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
def own_pad_tokenizer():
    """The tiny tokenizer with BOS and EOS moved to token 1: its pad token (id 0) is a token of its own."""
    tokenizer = make_tiny_tokenizer()
    tokenizer.bos_token = tokenizer.eos_token = tokenizer.convert_ids_to_tokens(1)
    assert tokenizer.pad_token_id == 0 and 0 not in (tokenizer.bos_token_id, tokenizer.eos_token_id)
    return tokenizer


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


def test_mask_is_inferred_from_leading_pad_ids(models, own_pad_tokenizer):
    base, reward_model = models
    inputs = own_pad_tokenizer(PROMPTS, return_tensors="pt", padding=True)
    assert (inputs["attention_mask"] == 0).any(), "the batch must be padded for this test to mean anything"
    batched = guided_generate(base, inputs, GenARMLogitsProcessor(reward_model, alpha=2.0, tokenizer=own_pad_tokenizer))
    width = inputs["input_ids"].shape[1]
    for row, prompt in enumerate(PROMPTS):
        assert torch.equal(batched[row, width:], alone(base, reward_model, own_pad_tokenizer, prompt))


@pytest.mark.parametrize("pad_source", ["tokenizer", "pad_token_id"])
def test_pad_id_that_is_also_eos_cannot_be_inferred_but_the_mask_works(models, tokenizer, pad_source):
    """GPT-2's way (pad = BOS = EOS), or a pad id given alone: a padded row may be a text opening with EOS."""
    base, reward_model = models
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    told = {"tokenizer": tokenizer} if pad_source == "tokenizer" else {"pad_token_id": tokenizer.pad_token_id}
    with pytest.raises(ValueError, match=r"row \d starts with the pad id 0.*both padding and text.*`attention_mask=`"):
        guided_generate(base, inputs, GenARMLogitsProcessor(reward_model, alpha=2.0, **told))
    processor = GenARMLogitsProcessor(reward_model, alpha=2.0, attention_mask=inputs["attention_mask"], **told)
    batched = guided_generate(base, inputs, processor)
    width = inputs["input_ids"].shape[1]
    for row, prompt in enumerate(PROMPTS):
        assert torch.equal(batched[row, width:], alone(base, reward_model, tokenizer, prompt))


@pytest.mark.parametrize("opening", ["eos", "bos"])
def test_row_opening_with_the_pad_token_is_refused_without_its_mask(models, opening):
    """The pad id as the BOS only or the EOS only: a row opening with it is refused, even when no other does."""
    _, reward_model = models
    tokenizer = make_tiny_tokenizer()
    setattr(tokenizer, "eos_token" if opening == "bos" else "bos_token", tokenizer.convert_ids_to_tokens(1))
    inputs = tokenizer(["The cat sat on", "Life"], return_tensors="pt", padding=True)
    assert inputs["input_ids"][0, 0] != 0 and inputs["input_ids"][1, 0] == 0
    processor = GenARMLogitsProcessor(reward_model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"row 1 starts with the pad id 0, which is also .*BOS, EOS or unknown"):
        processor(inputs["input_ids"], torch.randn(2, 400))


def _brute_force_guided(base_scores, reward_model, rows, alpha, beta):
    """log_softmax(scores) + alpha / beta * the reward model's next-token log-probs, each row alone, in full."""
    expected = []
    for scores, ids in zip(base_scores, rows):
        logits = reward_model(torch.tensor([ids])).logits[0, -1].float()
        expected.append(scores.float().log_softmax(-1) + alpha / beta * logits.log_softmax(-1))
    return torch.stack(expected)


def test_row_opening_with_eos_is_exact_given_its_mask(models, tokenizer):
    """The reported case: a text that starts with EOS (the pad token) was read as padding, 0.43 nats off."""
    _, reward_model = models
    assert tokenizer.eos_token_id == tokenizer.pad_token_id
    prompts = [tokenizer.eos_token + "The cat", "Life is short and good"]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    rows = [tokenizer(prompt)["input_ids"] for prompt in prompts]
    assert rows[0][0] == tokenizer.eos_token_id and inputs["attention_mask"][0, 0] == 0
    with pytest.raises(ValueError, match=r"row 0 starts with the pad id 0.*both padding and text"):
        GenARMLogitsProcessor(reward_model, tokenizer=tokenizer)(inputs["input_ids"], torch.randn(2, 400))
    processor = GenARMLogitsProcessor(
        reward_model, alpha=1.5, beta=0.5, attention_mask=inputs["attention_mask"], tokenizer=tokenizer
    )
    input_ids = inputs["input_ids"]
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        scores = torch.randn(2, 400, generator=generator)
        with torch.no_grad():
            guided = processor(input_ids, scores)
            expected = _brute_force_guided(scores, reward_model, rows, 1.5, 0.5)
        torch.testing.assert_close(guided, expected, atol=1e-5, rtol=0)
        new_tokens = guided.argmax(-1)
        input_ids = torch.cat([input_ids, new_tokens[:, None]], dim=1)
        rows = [[*row, int(token)] for row, token in zip(rows, new_tokens)]


def test_first_real_token_after_padding_is_scored_as_in_the_unpadded_row(models, own_pad_tokenizer):
    _, reward_model = models
    tokenizer = own_pad_tokenizer
    padded = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    scores = torch.randn(len(PROMPTS), 400)
    batched = GenARMLogitsProcessor(reward_model, tokenizer=tokenizer)(padded["input_ids"], scores)
    for row, prompt in enumerate(PROMPTS):
        single = tokenizer([prompt], return_tensors="pt")["input_ids"]
        expected = GenARMLogitsProcessor(reward_model, tokenizer=tokenizer)(single, scores[row : row + 1])
        torch.testing.assert_close(batched[row : row + 1], expected, atol=1e-5, rtol=0)


def test_pipeline_batches_give_each_prompt_its_own_result(models, own_pad_tokenizer):
    base, reward_model = models
    tokenizer = own_pad_tokenizer
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
    with pytest.raises(
        ValueError,
        match=r"several different prompts.*`tokenizer=` whose pad token is a token of its own",
    ):
        guided_generate(base, inputs, GenARMLogitsProcessor(reward_model))
    # One prompt (repeated by generate() for num_return_sequences) has no padding to tell.
    single = tokenizer([PROMPTS[0]], return_tensors="pt")
    guided_generate(base, single, GenARMLogitsProcessor(reward_model), num_beams=2, num_return_sequences=2)


def test_ambiguous_pad_ids_are_refused(models, tokenizer, own_pad_tokenizer):
    base, reward_model = models
    processor = GenARMLogitsProcessor(reward_model, tokenizer=tokenizer)
    bos_like = tokenizer([tokenizer.bos_token + prompt for prompt in PROMPTS], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match="row 0 starts with the pad id 0, which is also"):
        guided_generate(base, bos_like, processor)
    inner = tokenizer([f"Life{tokenizer.eos_token} is short", "The cat sat"], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match=r"row 0 holds the pad id 0 at column \d+, after its text"):
        guided_generate(base, inner, GenARMLogitsProcessor(reward_model, tokenizer=own_pad_tokenizer))
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


def test_reward_model_prompts_without_mask_follow_the_same_rule(models, tokenizer, own_pad_tokenizer):
    base, reward_model = models
    own = tokenizer([f"Question: {prompt}? Answer:" for prompt in PROMPTS], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match=r"`reward_model_inputs\[0\]\['input_ids'\]` holds several different"):
        GenARMLogitsProcessor(reward_model, reward_model_inputs=[{"input_ids": own["input_ids"]}])
    with pytest.raises(ValueError, match=r"row \d starts with the pad id 0.*Pass its 'attention_mask'"):
        GenARMLogitsProcessor(reward_model, tokenizer=tokenizer, reward_model_inputs=[{"input_ids": own["input_ids"]}])
    tokenizer = own_pad_tokenizer
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
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
    # Its pad token is its EOS (as GPT-2's): padding cannot be inferred, in generate() or a batching pipeline.
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    with pytest.raises(ValueError, match="both padding and text"):
        base.generate(**inputs, logits_processor=[processor()], **generate_kwargs)
    generator = pipeline("text-generation", model=base, tokenizer=tokenizer, batch_size=len(prompts))
    with pytest.raises(ValueError, match="both padding and text"):
        generator(prompts, logits_processor=[processor()], return_tensors=True, **generate_kwargs)
    unbatched = pipeline("text-generation", model=base, tokenizer=tokenizer)
    piped = unbatched(prompts, logits_processor=[processor()], return_tensors=True, **generate_kwargs)
    for row, tokens in enumerate(expected):
        assert torch.equal(with_mask[row, -NEW_TOKENS:], tokens), f"mask given, row {row}"
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


def test_pad_rows_differing_in_count_or_with_a_pad_of_its_own_are_refused(models, tokenizer, own_pad_tokenizer):
    base, reward_model = models
    inputs = tokenizer(["The cat sat on", "Good friends and"], return_tensors="pt", padding="max_length", max_length=12)
    starts = inputs["attention_mask"].argmax(-1)
    # Each row one token shorter, under the old mask: exactly one pad id opens every row, as a BOS equal to the pad
    # token would. Indistinguishable from a BOS when the BOS is the pad token...
    shifted = {key: value.clone() for key, value in inputs.items()}
    shifted["input_ids"][torch.arange(2), starts] = tokenizer.pad_token_id
    told = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"], tokenizer=tokenizer)
    guided_generate(base, shifted, told)
    # Only one row shifted: a text opening with EOS when the pad token is also the EOS (as here)...
    one_row = {key: value.clone() for key, value in inputs.items()}
    one_row["input_ids"][0, starts[0]] = tokenizer.pad_token_id
    told = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"], tokenizer=tokenizer)
    guided_generate(base, one_row, told)
    # ...but rows disagree when the pad token is the BOS only, which opens every row alike,
    bos_only = make_tiny_tokenizer()
    bos_only.eos_token = bos_only.convert_ids_to_tokens(1)
    told = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"], tokenizer=bos_only)
    with pytest.raises(ValueError, match=r"rows open with \[1, 0\]"):
        guided_generate(base, one_row, told)
    # ...and no row may open with a pad token of its own.
    told = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"], tokenizer=own_pad_tokenizer)
    with pytest.raises(ValueError, match="pad token is none of its BOS, EOS or unknown tokens"):
        guided_generate(base, shifted, told)
    # Two pad ids under ones in a row are more than a BOS and an EOS explain, even when the pad token is both.
    two = {key: value.clone() for key, value in inputs.items()}
    two["input_ids"][0, starts[0] : starts[0] + 3] = tokenizer.pad_token_id
    told = GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"], tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"row 0 opens with 3 pad id\(s\).*at most 2"):
        guided_generate(base, two, told)


def test_pad_of_its_own_lets_fixed_width_padding_be_inferred(models, tokenizer, own_pad_tokenizer):
    base, reward_model = models
    inputs = tokenizer(["Life", "A cat"], return_tensors="pt", padding="max_length", max_length=10)
    with pytest.raises(ValueError, match="row 0 starts with the pad id 0, which is also"):
        guided_generate(base, inputs, GenARMLogitsProcessor(reward_model, alpha=2.0, tokenizer=tokenizer))
    processor = GenARMLogitsProcessor(reward_model, alpha=2.0, tokenizer=own_pad_tokenizer)
    inferred = guided_generate(base, inputs, processor)
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


def test_a_row_of_padding_only_is_refused_as_with_its_mask(models, own_pad_tokenizer):
    _, reward_model = models
    tokenizer = own_pad_tokenizer
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    inputs["input_ids"][1] = tokenizer.pad_token_id
    inputs["attention_mask"][1] = 0
    with pytest.raises(ValueError, match="row 1 masks every column; each prompt needs at least one token"):
        GenARMLogitsProcessor(reward_model, attention_mask=inputs["attention_mask"])
    processor = GenARMLogitsProcessor(reward_model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="inferred from the pad id 0 row 1 masks every column; each prompt needs"):
        processor(inputs["input_ids"], torch.randn(len(PROMPTS), 400))


def test_cross_tokenizer_prompts_follow_the_same_padding_rule(models, tokenizer, own_pad_tokenizer):
    from hf_genarm import AutoregressiveRewardModel
    from hf_genarm.cross_tokenizer import CrossTokenizerGenARMLogitsProcessor
    from hf_genarm.cross_tokenizer_testing import make_tiny_metaspace_tokenizer

    base, _ = models
    reward_tokenizer = make_tiny_metaspace_tokenizer()
    reward_model = AutoregressiveRewardModel(
        make_tiny_causal_lm("llama", vocab_size=len(reward_tokenizer), seed=3), tokenizer=reward_tokenizer
    ).eval()

    def processor(base_tokenizer, **kwargs):
        return CrossTokenizerGenARMLogitsProcessor(
            reward_model, tokenizer=base_tokenizer, reward_model_tokenizers=[reward_tokenizer], alpha=2.0, **kwargs
        )

    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match=r"row \d starts with the pad id 0.*both padding and text.*`attention_mask=`"):
        guided_generate(base, inputs, processor(tokenizer))
    told = guided_generate(base, inputs, processor(tokenizer, attention_mask=inputs["attention_mask"]))
    # A base tokenizer whose pad token is its own lets the padding be read off the prompt, as with the mask.
    inferred = guided_generate(base, inputs, processor(own_pad_tokenizer))
    assert torch.equal(inferred[:, -NEW_TOKENS:], told[:, -NEW_TOKENS:])
    # A mask of other prompts is refused against the pad id here too.
    width = inputs["input_ids"].shape[1]
    other = tokenizer(["Life", "The cat sat on", "Good"], return_tensors="pt", padding="max_length", max_length=width)
    stale = processor(tokenizer, attention_mask=other["attention_mask"])
    with pytest.raises(ValueError, match="does not describe this prompt"):
        guided_generate(base, inputs, stale)
