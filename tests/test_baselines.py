"""Baselines: best-of-N, ARGS decoding and the sequence-classifier reward function, against brute force."""

import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, LogitsProcessor

from hf_genarm.baselines import ARGSLogitsProcessor, BestOfNOutput, SequenceClassifierReward, args_generate, best_of_n
from hf_genarm.testing import make_tiny_causal_lm

PROMPTS = ["The cat sat on", "Life", "Good friends and good food make"]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    # Tiny models on a shared CPU: one intra-op thread avoids oversubscription that makes these tests 10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_classifier(seed=5, pad_token_id=0):
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=400,
        n_embd=32,
        n_layer=2,
        n_head=4,
        num_labels=1,
        pad_token_id=pad_token_id,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2ForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def base():
    return make_tiny_causal_lm(seed=0, hidden_size=48)


@pytest.fixture(scope="module")
def classifier():
    return make_classifier()


def single_row_reward(classifier, ids):
    """The classifier's reward of one unpadded sequence."""
    with torch.no_grad():
        return classifier(input_ids=torch.tensor([ids])).logits[0, 0].item()


# ------------------------------------------------------------------------------------------ reward function
def test_reward_of_left_padded_ids_equals_each_row_alone(tokenizer, classifier):
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    rewards = SequenceClassifierReward(classifier)(inputs["input_ids"], inputs["attention_mask"])
    assert rewards.dtype == torch.float32 and rewards.shape == (3,)
    expected = [single_row_reward(classifier, tokenizer(prompt)["input_ids"]) for prompt in PROMPTS]
    torch.testing.assert_close(rewards, torch.tensor(expected), atol=1e-5, rtol=0)


def test_reward_of_texts_equals_reward_of_their_ids(tokenizer, classifier):
    reward_fn = SequenceClassifierReward(classifier, tokenizer, batch_size=2)
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    torch.testing.assert_close(reward_fn(PROMPTS), reward_fn(inputs["input_ids"], inputs["attention_mask"]))


def test_classifier_without_pad_token_scores_rows_one_by_one(tokenizer):
    classifier = make_classifier(pad_token_id=None)
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    rewards = SequenceClassifierReward(classifier)(inputs["input_ids"], inputs["attention_mask"])
    expected = [single_row_reward(classifier, tokenizer(prompt)["input_ids"]) for prompt in PROMPTS]
    torch.testing.assert_close(rewards, torch.tensor(expected), atol=1e-5, rtol=0)


def test_reward_function_rejects_bad_inputs(tokenizer, classifier):
    torch.manual_seed(0)
    two_labels = GPT2ForSequenceClassification(
        GPT2Config(vocab_size=400, n_embd=32, n_layer=1, n_head=4, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    )
    with pytest.raises(ValueError, match="num_labels=2"):
        SequenceClassifierReward(two_labels)
    with pytest.raises(ValueError, match="tokenizer"):
        SequenceClassifierReward(classifier)(["no tokenizer to read this"])
    with pytest.raises(TypeError, match="list of texts"):
        SequenceClassifierReward(classifier, tokenizer)("a single string")
    with pytest.raises(ValueError, match="batch_size"):
        SequenceClassifierReward(classifier, batch_size=0)


# ------------------------------------------------------------------------------------------ best-of-N
def test_best_of_n_returns_the_highest_reward_sample(base, tokenizer):
    seen = []

    def reward_fn(texts):
        seen.extend(texts)
        return [text.count("e") - 0.01 * len(text) for text in texts]

    output = best_of_n(base, tokenizer, PROMPTS, reward_fn, n=4, max_new_tokens=6, temperature=1.5)
    assert isinstance(output, BestOfNOutput)
    assert [len(candidates) for candidates in output.candidates] == [4, 4, 4]
    assert seen == [prompt + text for prompt, texts in zip(PROMPTS, output.candidates) for text in texts]
    for row, prompt in enumerate(PROMPTS):
        scores = reward_fn([prompt + text for text in output.candidates[row]])
        assert output.candidate_scores[row] == pytest.approx(scores)
        best = max(range(4), key=lambda index: (scores[index], -index))
        assert output.completions[row] == output.candidates[row][best]
        assert output.scores[row] == pytest.approx(scores[best])
    assert any(len(set(candidates)) > 1 for candidates in output.candidates), "samples should differ"


def test_best_of_n_samples_are_those_of_generate(base, tokenizer):
    torch.manual_seed(3)
    output = best_of_n(base, tokenizer, "Life", lambda texts: [0.0] * len(texts), n=3, max_new_tokens=5)
    torch.manual_seed(3)
    inputs = tokenizer(["Life"], return_tensors="pt")
    sequences = base.generate(**inputs, do_sample=True, num_return_sequences=3, max_new_tokens=5, pad_token_id=0)
    assert output.candidates == [tokenizer.batch_decode(sequences[:, inputs["input_ids"].shape[1] :], True)]
    assert output.completions == [output.candidates[0][0]], "ties go to the first sample"


def test_best_of_n_can_score_completions_alone(base, tokenizer):
    seen = []
    best_of_n(
        base,
        tokenizer,
        PROMPTS[:1],
        lambda texts: seen.extend(texts) or [1.0] * len(texts),
        n=2,
        max_new_tokens=3,
        include_prompt=False,
    )
    assert all(not text.startswith(PROMPTS[0]) for text in seen)


def test_best_of_n_can_rank_by_reward_per_completion_token(base, tokenizer):
    # Many EOS ids make the completions stop at different lengths; generate() pads finished rows with 0, an EOS id.
    kwargs = {"max_new_tokens": 8, "temperature": 2.0, "eos_token_id": list(range(0, 400, 7)), "pad_token_id": 0}

    def summed_log_probs(texts):  # negative, like an ARM's summed log-probabilities
        return [-1.0 - index % 5 for index in range(len(texts))]

    torch.manual_seed(1)
    raw = best_of_n(base, tokenizer, PROMPTS, summed_log_probs, n=4, **kwargs)
    torch.manual_seed(1)
    normalized = best_of_n(base, tokenizer, PROMPTS, summed_log_probs, n=4, length_normalized=True, **kwargs)
    torch.manual_seed(1)
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    sequences = base.generate(**inputs, do_sample=True, num_return_sequences=4, **kwargs)
    lengths = []
    for row in sequences[:, inputs["input_ids"].shape[1] :].tolist():
        ends = [column for column, token in enumerate(row) if token % 7 == 0]
        lengths.append(ends[0] + 1 if ends else len(row))
    assert len(set(lengths)) > 1, "the completions should differ in length"
    assert normalized.candidates == raw.candidates
    rewards = summed_log_probs([None] * 12)
    for row in range(len(PROMPTS)):
        expected = [rewards[4 * row + index] / lengths[4 * row + index] for index in range(4)]
        assert raw.candidate_scores[row] == pytest.approx(rewards[4 * row : 4 * row + 4])
        assert normalized.candidate_scores[row] == pytest.approx(expected)
        best = max(range(4), key=lambda index: (expected[index], -index))
        assert normalized.completions[row] == normalized.candidates[row][best]
        assert normalized.scores[row] == pytest.approx(expected[best])


def test_best_of_n_rejects_bad_arguments(base, tokenizer):
    with pytest.raises(ValueError, match="`n`"):
        best_of_n(base, tokenizer, PROMPTS, lambda texts: [0.0] * len(texts), n=0)
    with pytest.raises(ValueError, match="one per text"):
        best_of_n(base, tokenizer, PROMPTS, lambda texts: [0.0], n=2, max_new_tokens=2)
    with pytest.raises(ValueError, match="num_return_sequences"):
        best_of_n(base, tokenizer, PROMPTS, lambda texts: [0.0] * len(texts), n=2, num_return_sequences=2)
    with pytest.raises(TypeError, match="reward_fn"):
        best_of_n(base, tokenizer, PROMPTS, "not callable", n=2)
    with pytest.raises(TypeError, match="length_normalized"):
        best_of_n(base, tokenizer, PROMPTS, lambda texts: [0.0] * len(texts), n=2, length_normalized="yes")


# ------------------------------------------------------------------------------------------ ARGS
def args_greedy_reference(base, classifier, tokenizer, prompt, weight, top_k, steps):
    """ARGS-greedy for one unpadded prompt, one candidate and one reward forward pass at a time."""
    ids = tokenizer(prompt)["input_ids"]
    for _ in range(steps):
        with torch.no_grad():
            log_probs = torch.log_softmax(base(input_ids=torch.tensor([ids])).logits[0, -1].float(), dim=-1)
        candidate_log_probs, candidates = log_probs.topk(top_k)
        scores = [
            log_prob.item() + weight * single_row_reward(classifier, [*ids, token.item()])
            for log_prob, token in zip(candidate_log_probs, candidates)
        ]
        ids.append(candidates[max(range(top_k), key=scores.__getitem__)].item())
    return ids


def test_args_greedy_equals_brute_force_on_a_left_padded_batch(base, classifier, tokenizer):
    prompts = PROMPTS[:2]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    processor = ARGSLogitsProcessor(classifier, weight=4.0, top_k=4, attention_mask=inputs["attention_mask"])
    output = base.generate(**inputs, logits_processor=[processor], max_new_tokens=4, do_sample=False, pad_token_id=0)
    width = inputs["input_ids"].shape[1]
    for row, prompt in enumerate(prompts):
        expected = args_greedy_reference(base, classifier, tokenizer, prompt, 4.0, 4, steps=4)
        assert output[row, width:].tolist() == expected[-4:]
    greedy = base.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert not torch.equal(output, greedy), "the reward should change some choice, or the test shows nothing"


def test_args_picks_among_the_base_top_k_and_weight_changes_the_choice(base, classifier, tokenizer):
    calls = []

    class Recorder(ARGSLogitsProcessor):
        def __call__(self, input_ids, scores):
            output = super().__call__(input_ids, scores)
            calls.append((scores.clone(), output.clone()))
            return output

    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    processor = Recorder(classifier, weight=50.0, top_k=3, attention_mask=inputs["attention_mask"])
    base.generate(**inputs, logits_processor=[processor], max_new_tokens=6, do_sample=False, pad_token_id=0)
    changed = 0
    for scores, output in calls:
        top = scores.topk(3, dim=-1).indices
        finite = torch.isfinite(output)
        assert finite.sum(-1).tolist() == [3] * len(PROMPTS)
        assert torch.equal(finite, torch.zeros_like(finite).scatter(-1, top, True))
        changed += (output.argmax(-1) != scores.argmax(-1)).sum().item()
    assert changed > 0, "a large reward weight should overrule the base model's first choice somewhere"


@pytest.mark.parametrize(("weight", "top_k"), [(0.0, 8), (100.0, 1)])
def test_args_without_reward_influence_equals_greedy_base(base, classifier, tokenizer, weight, top_k):
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    greedy = base.generate(**inputs, max_new_tokens=6, do_sample=False, pad_token_id=0)
    completions = args_generate(base, tokenizer, PROMPTS, classifier, weight=weight, top_k=top_k, max_new_tokens=6)
    assert completions == tokenizer.batch_decode(greedy[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


class BoostToken(LogitsProcessor):
    """Keeps one token (EOS, which is also the pad token) among the top candidates, to exercise that path."""

    def __call__(self, input_ids, scores):
        return scores.index_add(-1, torch.tensor([0]), torch.full((scores.shape[0], 1), 3.0))


class Recorder(ARGSLogitsProcessor):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def __call__(self, input_ids, scores):
        output = super().__call__(input_ids, scores)
        self.calls.append((input_ids.clone(), scores.clone(), output.clone()))
        return output


@pytest.mark.parametrize(
    "mode",
    [
        {"do_sample": True, "num_return_sequences": 2},
        {"do_sample": False, "num_beams": 3},
    ],
    ids=["sampling", "beam_search"],
)
def test_cached_args_scores_equal_scoring_every_prefix_from_scratch(base, classifier, tokenizer, mode):
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    mask = inputs["attention_mask"]
    cached = Recorder(classifier, weight=3.0, top_k=4, attention_mask=mask)
    fed_widths = []
    forward = cached._cached_rewards._forward
    cached._cached_rewards._forward = lambda ids, ids_mask: fed_widths.append(ids.shape[1]) or forward(ids, ids_mask)
    torch.manual_seed(0)
    base.generate(
        **inputs, logits_processor=[BoostToken(), cached], max_new_tokens=8, pad_token_id=0, temperature=2.0, **mode
    )
    uncached = ARGSLogitsProcessor(classifier, weight=3.0, top_k=4, attention_mask=mask, use_cache=False)
    scored_eos = took_eos = False
    for input_ids, scores, output in cached.calls:
        expected = uncached(input_ids, scores)
        assert torch.equal(torch.isfinite(output), torch.isfinite(expected))
        finite = torch.isfinite(expected)
        torch.testing.assert_close(output[finite], expected[finite], atol=1e-4, rtol=0)
        scored_eos |= bool(finite[:, 0].any())
        took_eos |= bool((input_ids[:, mask.shape[1] :] == 0).any())
    # EOS is also the pad token: a candidate the classifier cannot pool on, which gets its prefix's reward.
    assert scored_eos
    if mode.get("do_sample"):
        assert took_eos, "a row should continue after taking the EOS candidate, or that path goes untested"
        assert sum(width > 1 for width in fed_widths) == 1, "after the prompt, each step should feed one token"


def test_args_runs_k_reward_evaluations_per_row_and_token(base, tokenizer):
    evaluated_rows = []

    def reward(input_ids, attention_mask):
        evaluated_rows.append(input_ids.shape[0])
        # Each candidate prefix is its row's left-padded prompt, the generated tokens and one candidate token.
        assert (attention_mask.diff(dim=-1) >= 0).all() and attention_mask[:, -1].all()
        return torch.zeros(input_ids.shape[0])

    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    processor = ARGSLogitsProcessor(reward, top_k=4, attention_mask=inputs["attention_mask"], batch_size=5)
    base.generate(
        **inputs, logits_processor=[processor], max_new_tokens=3, min_new_tokens=3, do_sample=False, pad_token_id=0
    )
    assert sum(evaluated_rows) == 3 * len(PROMPTS) * 4
    assert max(evaluated_rows) <= 5


def test_args_with_a_text_reward_and_sampling(base, tokenizer):
    def vowel_reward(texts):
        return [sum(text.count(vowel) for vowel in "aeiou") for text in texts]

    torch.manual_seed(0)
    completions = args_generate(
        base,
        tokenizer,
        PROMPTS,
        vowel_reward,
        weight=1.0,
        top_k=4,
        reward_inputs="text",
        max_new_tokens=4,
        do_sample=True,
        num_return_sequences=2,
    )
    assert len(completions) == 2 * len(PROMPTS)


def test_args_rejects_bad_arguments(classifier, tokenizer):
    with pytest.raises(ValueError, match="top_k"):
        ARGSLogitsProcessor(classifier, top_k=0)
    with pytest.raises(ValueError, match="weight"):
        ARGSLogitsProcessor(classifier, weight=float("nan"))
    with pytest.raises(ValueError, match="reward_inputs"):
        ARGSLogitsProcessor(classifier, reward_inputs="tokens")
    with pytest.raises(ValueError, match="tokenizer"):
        ARGSLogitsProcessor(classifier, reward_inputs="text")
    with pytest.raises(ValueError, match="reward_tokenizer"):
        ARGSLogitsProcessor(classifier, reward_inputs="text", tokenizer=tokenizer)
    with pytest.raises(TypeError, match="reward_model"):
        ARGSLogitsProcessor("a reward model name")
    with pytest.raises(ValueError, match="use_cache"):
        ARGSLogitsProcessor(lambda ids, mask: torch.zeros(ids.shape[0]), use_cache=True)
    with pytest.raises(ValueError, match="use_cache"):
        ARGSLogitsProcessor(make_classifier(pad_token_id=None), use_cache=True)
    assert ARGSLogitsProcessor(make_classifier(pad_token_id=None))._cached_rewards is None
    processor = ARGSLogitsProcessor(classifier, attention_mask=torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="new ARGSLogitsProcessor"):
        processor(torch.zeros(3, 5, dtype=torch.long), torch.zeros(3, 400))


def test_reward_model_tokenizers_go_through_the_recorded_tokenizer_check():
    from hf_genarm.configuration import RewardModelMetadata
    from hf_genarm.cross_tokenizer_testing import make_tiny_metaspace_tokenizer
    from hf_genarm.testing import make_tiny_tokenizer
    from hf_genarm.vocab import tokenizer_fingerprint

    tokenizer, other = make_tiny_tokenizer(), make_tiny_metaspace_tokenizer()
    # A reward model that records its tokenizer: another one is refused wherever the baselines take one.
    recording = GPT2ForSequenceClassification(
        GPT2Config(vocab_size=len(other), n_embd=32, n_layer=1, n_head=4, num_labels=1, pad_token_id=0)
    ).eval()
    recording.metadata = RewardModelMetadata(tokenizer=tokenizer_fingerprint(other))
    with pytest.raises(ValueError, match=r"`tokenizer` is not the tokenizer the reward model records"):
        SequenceClassifierReward(recording, tokenizer)
    with pytest.raises(ValueError, match=r"`tokenizer` is not the tokenizer the reward model records"):
        ARGSLogitsProcessor(recording, reward_inputs="text", tokenizer=tokenizer, reward_tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"`tokenizer` \(whose ids the reward model reads\) is not the tokenizer"):
        ARGSLogitsProcessor(recording, reward_inputs="ids", tokenizer=tokenizer)
    ARGSLogitsProcessor(recording, reward_inputs="text", tokenizer=tokenizer, reward_tokenizer=other)
    # A classifier records none, but a tokenizer with more tokens than it embeds cannot be its own.
    narrow = GPT2ForSequenceClassification(
        GPT2Config(vocab_size=300, n_embd=32, n_layer=1, n_head=4, num_labels=1, pad_token_id=0)
    ).eval()
    with pytest.raises(ValueError, match=r"`tokenizer` has 400 tokens but the reward model embeds 300.*from_pretr"):
        SequenceClassifierReward(narrow, tokenizer)
    with pytest.raises(ValueError, match=r"has 400 tokens but the reward model embeds 300"):
        args_generate(make_tiny_causal_lm(), tokenizer, ["The cat"], narrow, max_new_tokens=2)
    # ARGS on ids: the reward model reads the base's ids, so its own tokenizer must be the base's.
    with pytest.raises(ValueError, match=r"`reward_tokenizer` differs from `tokenizer`.*reward_inputs='text'"):
        ARGSLogitsProcessor(make_classifier(), reward_inputs="ids", tokenizer=tokenizer, reward_tokenizer=other)


def test_args_without_a_mask_settles_padding_by_the_guidance_rule():
    from hf_genarm.testing import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()  # its pad token is its EOS
    base = make_tiny_causal_lm()
    inputs = tokenizer(["The cat sat on", "Life"], return_tensors="pt", padding=True)
    assert inputs["attention_mask"][1, 0] == 0

    def run(**kwargs):
        processor = ARGSLogitsProcessor(make_classifier(), top_k=3, **kwargs)
        return base.generate(**inputs, logits_processor=[processor], max_new_tokens=3, do_sample=False, pad_token_id=0)

    with pytest.raises(ValueError, match=r"row 1 starts with the pad id 0.*both padding and text.*ARGSLogitsProcessor"):
        run(tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"several different prompts.*`attention_mask=` to ARGSLogitsProcessor"):
        run()
    own_pad = make_tiny_tokenizer()
    own_pad.bos_token = own_pad.eos_token = own_pad.convert_ids_to_tokens(1)
    assert torch.equal(run(tokenizer=own_pad), run(attention_mask=inputs["attention_mask"]))
