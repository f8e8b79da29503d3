"""Cross-tokenizer guidance against a brute-force reference that applies the definition literally.

The reference decodes every row in full, tokenizes the whole text with the reward tokenizer (with and without
each candidate's text) and runs the reward model without a cache: the candidate's score is
`log P_r(tok_r(x + s)) - log P_r(tok_r(x))`. The base tokenizer is a byte-level BPE of 400 tokens, the reward
tokenizer a SentencePiece-style Metaspace BPE of 200 tokens with byte fallback (+256 byte tokens).
"""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from hf_genarm import AutoregressiveRewardModel, GenARMLogitsProcessor
from hf_genarm.cross_tokenizer import CrossTokenizerGenARMLogitsProcessor, cross_tokenizer_token_rewards
from hf_genarm.cross_tokenizer_testing import make_tiny_metaspace_tokenizer, make_tiny_wordpiece_tokenizer
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
from hf_genarm.visualize import score_text

PROMPTS = ["The cat sat on", "Good friends and good café food make a"]
ALPHA, BETA = 1.0, 0.5


@pytest.fixture(scope="module")
def base_tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def reward_tokenizer():
    return make_tiny_metaspace_tokenizer()


@pytest.fixture(scope="module")
def base():
    return make_tiny_causal_lm(seed=0)


@pytest.fixture(scope="module")
def reward_model(reward_tokenizer):
    model = make_tiny_causal_lm("llama", vocab_size=len(reward_tokenizer), seed=1)
    return AutoregressiveRewardModel(model, tokenizer=reward_tokenizer).eval()


class Recorder(LogitsProcessor):
    """Keeps every call's ids and scores."""

    def __init__(self):
        self.calls = []

    def __call__(self, input_ids, scores):
        self.calls.append((input_ids.clone(), scores.clone()))
        return scores


def _decoded(tokenizer, ids):
    return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False).rstrip("\ufffd")


@torch.no_grad()
def _sequence_log_probs(model, sequences):
    """log P of each id sequence (every token after the first), full forward, no cache, right padding."""
    width = max(len(ids) for ids in sequences)
    input_ids = torch.zeros(len(sequences), width, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits.float()
    log_probs = torch.log_softmax(logits[:, :-1], -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return (log_probs * mask[:, 1:]).sum(-1)


def _reward_ids_of_text(reward_tokenizer, text):
    """The reward model's ids of `text` by definition: the tokenizer's own, cut after the text's last token (the
    special tokens a post-processor appends, a WordPiece `[SEP]`, are no part of the text)."""
    ids = list(reward_tokenizer(text)["input_ids"])
    plain = list(reward_tokenizer(text, add_special_tokens=False)["input_ids"])
    starts = [start for start in range(len(ids) - len(plain) + 1) if ids[start : start + len(plain)] == plain]
    return ids[: starts[0] + len(plain)]


@pytest.fixture(scope="module")
def wordpiece_tokenizer():
    return make_tiny_wordpiece_tokenizer()


@pytest.fixture(scope="module")
def wordpiece_reward_model(wordpiece_tokenizer):
    model = make_tiny_causal_lm("llama", vocab_size=len(wordpiece_tokenizer), seed=3)
    return AutoregressiveRewardModel(model, beta_r=0.5, tokenizer=wordpiece_tokenizer).eval()


def reference_candidate_scores(
    model, base_tokenizer, reward_tokenizer, row_ids, candidates, own_prompt=None, prompt_length=0
):
    """By definition: the reward model's log-probability of each candidate's text after the row's text.

    With `own_prompt` (reward-model ids) the reward model reads it, then the text generated after the base
    prompt's first `prompt_length` tokens. Returns `{candidate: score}` for the candidates scored exactly
    (text candidates and EOS).
    """
    prompt_text = _decoded(base_tokenizer, row_ids[:prompt_length]) if own_prompt is not None else ""

    def reward_ids(text):
        if own_prompt is not None:
            assert text.startswith(prompt_text)
            generated = text[len(prompt_text) :]
            return own_prompt + list(reward_tokenizer(generated, add_special_tokens=False)["input_ids"])
        return _reward_ids_of_text(reward_tokenizer, text)

    text = _decoded(base_tokenizer, row_ids)
    sequences, scored = [reward_ids(text)], []
    for candidate in candidates:
        if candidate == base_tokenizer.eos_token_id:
            sequences.append([*reward_ids(text), reward_tokenizer.eos_token_id])
        else:
            extended = _decoded(base_tokenizer, [*row_ids, candidate])
            if candidate in base_tokenizer.all_special_ids or extended == text:
                continue
            assert extended.startswith(text)
            sequences.append(reward_ids(extended))
        scored.append(candidate)
    totals = _sequence_log_probs(model, sequences)
    return {candidate: float(totals[index + 1] - totals[0]) for index, candidate in enumerate(scored)}


def _check_against_reference(before, after, model, base_tokenizer, reward_tokenizer, prompt_mask, weight, own=None):
    """Every recorded step and row: the guided scores minus the base's are `weight` times the reference."""
    checked = 0
    for (input_ids, raw), (_, guided) in zip(before.calls, after.calls):
        base_log_probs = torch.log_softmax(raw.float(), -1)
        rows_per_prompt = input_ids.shape[0] // prompt_mask.shape[0]
        masks = prompt_mask.repeat_interleave(rows_per_prompt, 0)
        for row in range(input_ids.shape[0]):
            finite = torch.isfinite(guided[row]).nonzero().squeeze(-1).tolist()
            prompt_width = masks.shape[1]
            prompt_ids = input_ids[row, :prompt_width][masks[row].bool()].tolist()
            row_ids = prompt_ids + input_ids[row, prompt_width:].tolist()
            own_prompt = None if own is None else own[row // rows_per_prompt]
            expected = reference_candidate_scores(
                model, base_tokenizer, reward_tokenizer, row_ids, finite, own_prompt, len(prompt_ids)
            )
            for candidate in finite:
                measured = float(guided[row, candidate] - base_log_probs[row, candidate]) / weight
                if candidate in expected:
                    assert measured == pytest.approx(expected[candidate], abs=1e-4), (row_ids, candidate)
                    checked += 1
                else:
                    assert measured == pytest.approx(min(expected.values(), default=0.0), abs=1e-4)
    assert checked > 0


def _run(base, processor, inputs, pad_token_id, **generate_kwargs):
    before, after = Recorder(), Recorder()
    output = base.generate(
        **inputs,
        logits_processor=LogitsProcessorList([before, processor, after]),
        pad_token_id=pad_token_id,
        **generate_kwargs,
    )
    return output, before, after


@pytest.mark.parametrize(
    "generate_kwargs",
    [
        {"do_sample": False},
        {"do_sample": True, "top_k": 0, "temperature": 1.0},
        {"do_sample": False, "num_beams": 2, "num_return_sequences": 2},
    ],
    ids=["greedy", "sampling", "beam-search"],
)
def test_candidate_scores_match_the_brute_force_reference(
    generate_kwargs, base, reward_model, base_tokenizer, reward_tokenizer
):
    inputs = base_tokenizer(PROMPTS, return_tensors="pt", padding=True)
    processor = CrossTokenizerGenARMLogitsProcessor(
        reward_model,
        tokenizer=base_tokenizer,
        reward_model_tokenizers=[reward_tokenizer],
        alpha=ALPHA,
        beta=BETA,
        attention_mask=inputs["attention_mask"],
        num_candidates=8,
    )
    torch.manual_seed(0)
    output, before, after = _run(
        base, processor, inputs, base_tokenizer.pad_token_id, max_new_tokens=12, **generate_kwargs
    )
    assert output.shape[1] > inputs["input_ids"].shape[1]
    _check_against_reference(
        before, after, reward_model, base_tokenizer, reward_tokenizer, inputs["attention_mask"], ALPHA / BETA
    )


def test_metaspace_base_guided_by_a_byte_level_reward_model(reward_tokenizer):
    # The other direction: the base decodes `▁` pieces (its decoder strips the first space), the reward model's
    # tokenizer adds no BOS (its first token is committed as is). The base's byte-fallback tokens are suppressed:
    # a random model's invalid UTF-8 makes a byte-fallback decoder rewrite earlier text (see the docs).
    base_tokenizer, reward_tokenizer = reward_tokenizer, make_tiny_tokenizer()
    base = make_tiny_causal_lm(vocab_size=len(base_tokenizer), seed=0, eos_token_id=base_tokenizer.eos_token_id)
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm("qwen2", seed=4), tokenizer=reward_tokenizer).eval()
    inputs = base_tokenizer(PROMPTS, return_tensors="pt", padding=True)
    processor = CrossTokenizerGenARMLogitsProcessor(
        reward_model,
        tokenizer=base_tokenizer,
        reward_model_tokenizers=[reward_tokenizer],
        beta=BETA,
        attention_mask=inputs["attention_mask"],
        num_candidates=8,
    )
    byte_tokens = [index for token, index in base_tokenizer.get_vocab().items() if token.startswith("<0x")]
    torch.manual_seed(0)
    _, before, after = _run(
        base,
        processor,
        inputs,
        base_tokenizer.pad_token_id,
        max_new_tokens=16,
        do_sample=True,
        top_k=0,
        suppress_tokens=byte_tokens,
    )
    _check_against_reference(
        before, after, reward_model, base_tokenizer, reward_tokenizer, inputs["attention_mask"], 1 / BETA
    )


def test_reward_model_own_prompt(base, reward_model, base_tokenizer, reward_tokenizer):
    inputs = base_tokenizer(PROMPTS, return_tensors="pt", padding=True)
    own_prompts = [f"Question: {prompt}? Answer:" for prompt in PROMPTS]
    own = reward_tokenizer(own_prompts, return_tensors="pt", padding=True)
    processor = CrossTokenizerGenARMLogitsProcessor(
        reward_model,
        tokenizer=base_tokenizer,
        reward_model_tokenizers=[reward_tokenizer],
        beta=BETA,
        attention_mask=inputs["attention_mask"],
        reward_model_inputs={"input_ids": own["input_ids"], "attention_mask": own["attention_mask"]},
        num_candidates=8,
    )
    _, before, after = _run(base, processor, inputs, base_tokenizer.pad_token_id, max_new_tokens=8, do_sample=False)
    own_rows = [list(reward_tokenizer(prompt)["input_ids"]) for prompt in own_prompts]
    _check_against_reference(
        before, after, reward_model, base_tokenizer, reward_tokenizer, inputs["attention_mask"], 1 / BETA, own=own_rows
    )


def test_batched_generation_equals_one_prompt_at_a_time(base, reward_model, base_tokenizer, reward_tokenizer):
    def generate(prompts):
        inputs = base_tokenizer(prompts, return_tensors="pt", padding=True)
        processor = CrossTokenizerGenARMLogitsProcessor(
            reward_model,
            tokenizer=base_tokenizer,
            reward_model_tokenizers=[reward_tokenizer],
            beta=BETA,
            attention_mask=inputs["attention_mask"],
        )
        output = base.generate(
            **inputs,
            logits_processor=[processor],
            max_new_tokens=10,
            do_sample=False,
            pad_token_id=base_tokenizer.pad_token_id,
        )
        return base_tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    assert generate(PROMPTS) == [generate([prompt])[0] for prompt in PROMPTS]


def test_identical_tokenizers_are_the_same_tokenizer_path_bit_for_bit(base, base_tokenizer):
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm("llama", seed=1), tokenizer=base_tokenizer).eval()
    inputs = base_tokenizer(PROMPTS, return_tensors="pt", padding=True)
    results = []
    for processor_class, kwargs in (
        (GenARMLogitsProcessor, {}),
        (CrossTokenizerGenARMLogitsProcessor, {"reward_model_tokenizers": [make_tiny_tokenizer()]}),
    ):
        processor = processor_class(
            reward_model, beta=BETA, attention_mask=inputs["attention_mask"], tokenizer=base_tokenizer, **kwargs
        )
        torch.manual_seed(3)
        output = base.generate(
            **inputs,
            logits_processor=[processor],
            max_new_tokens=8,
            do_sample=True,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=base_tokenizer.pad_token_id,
        )
        results.append(output)
    assert torch.equal(results[0].sequences, results[1].sequences)
    assert all(torch.equal(first, second) for first, second in zip(results[0].scores, results[1].scores))


def test_mismatched_tokenizer_error_says_how_to_opt_in(base_tokenizer, reward_model):
    with pytest.raises(ValueError, match="CrossTokenizerGenARMLogitsProcessor"):
        GenARMLogitsProcessor(reward_model, tokenizer=base_tokenizer)


@pytest.mark.parametrize(
    "assistance",
    [{"assistant_model": "tiny"}, {"prompt_lookup_num_tokens": 3}],
    ids=["assistant-model", "prompt-lookup"],
)
def test_assisted_decoding_is_refused_when_it_takes_tokens_back_and_the_caches_are_freed(
    assistance, base, reward_model, base_tokenizer, reward_tokenizer
):
    if "assistant_model" in assistance:
        assistance = {"assistant_model": make_tiny_causal_lm(seed=5)}
    inputs = base_tokenizer(PROMPTS[:1], return_tensors="pt")
    processor = CrossTokenizerGenARMLogitsProcessor(
        reward_model, tokenizer=base_tokenizer, reward_model_tokenizers=[reward_tokenizer]
    )
    with pytest.raises(ValueError, match="assisted"):
        base.generate(
            **inputs,
            logits_processor=[processor],
            max_new_tokens=12,
            do_sample=False,
            pad_token_id=base_tokenizer.pad_token_id,
            **assistance,
        )
    assert processor._streams[0].context.cache is None


def test_reward_tokenizer_is_loaded_from_the_saved_reward_model(
    tmp_path, reward_model, reward_tokenizer, base_tokenizer
):
    reward_model.save_pretrained(tmp_path / "arm", tokenizer=reward_tokenizer)
    loaded = AutoregressiveRewardModel.from_pretrained(tmp_path / "arm")
    processor = CrossTokenizerGenARMLogitsProcessor(loaded, tokenizer=base_tokenizer)
    assert processor.cross_tokenizer
    assert processor.reward_model_tokenizers[0].get_vocab() == reward_tokenizer.get_vocab()


def test_bad_arguments_are_refused_before_any_work(reward_model, base_tokenizer, reward_tokenizer):
    with pytest.raises(ValueError, match="num_candidates"):
        CrossTokenizerGenARMLogitsProcessor(
            reward_model, tokenizer=base_tokenizer, reward_model_tokenizers=[reward_tokenizer], num_candidates=0
        )
    with pytest.raises(TypeError, match="tokenizer"):
        CrossTokenizerGenARMLogitsProcessor(reward_model, tokenizer=None)
    with pytest.raises(ValueError, match="one entry"):
        CrossTokenizerGenARMLogitsProcessor(reward_model, tokenizer=base_tokenizer, reward_model_tokenizers=[])


# ------------------------------------------------------------------------------------------------ scoring
SCORED_PROMPT, SCORED_RESPONSE = "Question: how do I bake bread? Answer:", " mix flour, water and salt, then wait."


def test_per_reward_token_scores_are_score_text(reward_model, reward_tokenizer, base_tokenizer):
    tokens, rewards = cross_tokenizer_token_rewards(
        reward_model, reward_tokenizer, base_tokenizer, SCORED_PROMPT, SCORED_RESPONSE, per="reward"
    )
    assert (tokens, rewards) == score_text(reward_model, reward_tokenizer, SCORED_PROMPT, SCORED_RESPONSE)


def test_per_base_token_scores_are_what_guidance_adds(reward_model, reward_tokenizer, base_tokenizer):
    tokens, rewards = cross_tokenizer_token_rewards(
        reward_model, reward_tokenizer, base_tokenizer, SCORED_PROMPT, SCORED_RESPONSE, per="base"
    )
    prompt_ids = base_tokenizer(SCORED_PROMPT)["input_ids"]
    response_ids = base_tokenizer(SCORED_PROMPT + SCORED_RESPONSE)["input_ids"][len(prompt_ids) :]
    assert "".join(tokens[:-1]) == SCORED_RESPONSE and tokens[-1] == base_tokenizer.eos_token
    assert len(rewards) == len(response_ids) + 1
    for index, token in enumerate([*response_ids, base_tokenizer.eos_token_id]):
        row_ids = prompt_ids + response_ids[:index]
        expected = reference_candidate_scores(reward_model, base_tokenizer, reward_tokenizer, row_ids, [token])[token]
        assert rewards[index] == pytest.approx(reward_model.beta_r * expected, abs=1e-5)
    # Base tokens and reward tokens cut the same response: the totals agree.
    _, per_reward = cross_tokenizer_token_rewards(
        reward_model, reward_tokenizer, base_tokenizer, SCORED_PROMPT, SCORED_RESPONSE, per="reward"
    )
    assert sum(rewards) == pytest.approx(sum(per_reward), abs=1e-5)


def test_per_base_token_scores_with_one_tokenizer_are_score_text(base_tokenizer):
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm("llama", seed=2), tokenizer=base_tokenizer).eval()
    expected = score_text(reward_model, base_tokenizer, SCORED_PROMPT, SCORED_RESPONSE)
    tokens, rewards = cross_tokenizer_token_rewards(
        reward_model, base_tokenizer, base_tokenizer, SCORED_PROMPT, SCORED_RESPONSE, per="base"
    )
    assert tokens == expected[0]
    assert rewards == pytest.approx(expected[1], abs=1e-5)


def test_scoring_refuses_bad_arguments(reward_model, reward_tokenizer, base_tokenizer):
    with pytest.raises(ValueError, match="per"):
        cross_tokenizer_token_rewards(reward_model, reward_tokenizer, base_tokenizer, "a", "b", per="word")
    with pytest.raises(ValueError, match="empty"):
        cross_tokenizer_token_rewards(reward_model, reward_tokenizer, base_tokenizer, "a", "")


def test_cli_score_reports_rewards_per_base_token(tmp_path, capsys, reward_model, reward_tokenizer, base_tokenizer):
    import json

    from hf_genarm.cli import main

    reward_model.save_pretrained(tmp_path / "arm", tokenizer=reward_tokenizer)
    base_tokenizer.save_pretrained(tmp_path / "base")
    command = ["score", "--reward-model", str(tmp_path / "arm"), "--prompt", SCORED_PROMPT]
    assert main([*command, "--response", SCORED_RESPONSE, "--base-tokenizer", str(tmp_path / "base"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    tokens, rewards = cross_tokenizer_token_rewards(
        reward_model, reward_tokenizer, base_tokenizer, SCORED_PROMPT, SCORED_RESPONSE, per="base"
    )
    assert printed["tokens"] == tokens
    assert printed["rewards"] == pytest.approx(rewards, abs=1e-5)


@pytest.mark.parametrize("which", ["byte-level", "metaspace"])
def test_committed_tokens_and_pending_tokens_make_the_whole_tokenization(which, base_tokenizer, reward_tokenizer):
    from hf_genarm._cross_tokenizer_text import RewardTokenizer

    tokenizer = RewardTokenizer(base_tokenizer if which == "byte-level" else reward_tokenizer)
    texts = ["The cat sat on the warm mat", "Good  friends,  and café food", "A", "wonderfulwonderfulwonderful" * 4]
    results = tokenizer.stable_prefixes(texts, [False, False, True, False])
    for text, (chars, ids) in zip(texts, results):
        assert ids + tokenizer.encode([text[chars:]])[0] == tokenizer.encode([text])[0]
    assert 0 < results[0][0] < len(texts[0]) and texts[0][results[0][0] :] == " warm mat"
    assert results[2] == (1, tokenizer.encode(["A"])[0])  # a row with nothing cached commits its first token
    if which == "byte-level":
        assert results[3][0] > 0  # one long word: token boundaries, a few tokens kept pending
    else:
        assert results[3][0] == 0  # inside a word the right side would get a `▁` prepended: nothing to commit


def test_wordpiece_guidance_never_feeds_the_trailing_separator(
    base, base_tokenizer, wordpiece_tokenizer, wordpiece_reward_model
):
    inputs = base_tokenizer(PROMPTS, return_tensors="pt", padding=True)
    processor = CrossTokenizerGenARMLogitsProcessor(
        wordpiece_reward_model,
        tokenizer=base_tokenizer,
        reward_model_tokenizers=[wordpiece_tokenizer],
        alpha=ALPHA,
        beta=BETA,
        attention_mask=inputs["attention_mask"],
        num_candidates=8,
    )
    _, before, after = _run(base, processor, inputs, base_tokenizer.pad_token_id, max_new_tokens=6, do_sample=False)
    _check_against_reference(
        before,
        after,
        wordpiece_reward_model,
        base_tokenizer,
        wordpiece_tokenizer,
        inputs["attention_mask"],
        ALPHA / BETA,
    )


@pytest.mark.parametrize("add_eos", [True, False], ids=["finished", "partial"])
def test_wordpiece_scores_leave_out_the_trailing_separator_and_agree_per_base_and_per_reward(
    add_eos, base_tokenizer, wordpiece_tokenizer, wordpiece_reward_model
):
    prompt, response = "The cat sat on", " the warm mat"
    arguments = (wordpiece_reward_model, wordpiece_tokenizer, base_tokenizer, prompt, response)
    base_tokens, base_rewards = cross_tokenizer_token_rewards(*arguments, per="base", add_eos=add_eos)
    reward_tokens, reward_rewards = cross_tokenizer_token_rewards(*arguments, per="reward", add_eos=add_eos)
    assert "[SEP]" not in base_tokens and "[SEP]" not in reward_tokens
    assert reward_tokens[-1] == ("[EOS]" if add_eos else "mat")
    # By definition: the response's reward is beta_r times the log-probability of `[CLS] prompt response (EOS)`
    # after `[CLS] prompt`, the separator appended by the post-processor being no part of either.
    prompt_ids = _reward_ids_of_text(wordpiece_tokenizer, prompt)
    full_ids = _reward_ids_of_text(wordpiece_tokenizer, prompt + response)
    full_ids = [*full_ids, wordpiece_tokenizer.eos_token_id] if add_eos else full_ids
    totals = _sequence_log_probs(wordpiece_reward_model, [prompt_ids, full_ids])
    expected = wordpiece_reward_model.beta_r * float(totals[1] - totals[0])
    assert sum(base_rewards) == pytest.approx(expected, abs=1e-5)
    assert sum(reward_rewards) == pytest.approx(expected, abs=1e-5)
    # Each base token gets what guidance adds for it.
    base_prompt_ids = base_tokenizer(prompt)["input_ids"]
    response_ids = base_tokenizer(prompt + response)["input_ids"][len(base_prompt_ids) :]
    scored = [*response_ids, base_tokenizer.eos_token_id] if add_eos else response_ids
    for index, token in enumerate(scored):
        row_ids = base_prompt_ids + response_ids[:index]
        reference = reference_candidate_scores(
            wordpiece_reward_model, base_tokenizer, wordpiece_tokenizer, row_ids, [token]
        )[token]
        assert base_rewards[index] == pytest.approx(wordpiece_reward_model.beta_r * reference, abs=1e-5)
