"""Preference data preparation: TRL formats in, tokenized pairs out, bad rows skipped and counted."""

import gzip
import json
import logging

import pytest
import torch
from datasets import Dataset, DatasetDict, IterableDataset

from hf_genarm import PreferenceCollator, prepare_preference_dataset
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|endoftext|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
PROMPT = "Question: how do I bake bread? Answer:"
CHOSEN = " mix flour, water, salt and yeast, then wait."
REJECTED = " the worst movie I have ever seen."


@pytest.fixture()
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture()
def chat_tokenizer():
    tokenizer = make_tiny_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def ids(tokenizer, text):
    return tokenizer(text)["input_ids"]


def test_explicit_prompt_rows_split_at_the_prompt_and_end_with_eos(tokenizer):
    dataset, report = prepare_preference_dataset(
        [{"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}], tokenizer
    )
    row = dataset[0]
    prompt_ids = ids(tokenizer, PROMPT)
    assert ids(tokenizer, PROMPT + CHOSEN)[: len(prompt_ids)] == prompt_ids
    assert row["prompt_ids"] == prompt_ids
    assert row["chosen_ids"] == [*ids(tokenizer, PROMPT + CHOSEN)[len(prompt_ids) :], tokenizer.eos_token_id]
    assert row["rejected_ids"] == [*ids(tokenizer, PROMPT + REJECTED)[len(prompt_ids) :], tokenizer.eos_token_id]
    assert (report.format, report.explicit_prompt, report.kept, report.skipped) == ("text", True, 1, {})


def test_implicit_prompt_is_the_longest_common_prefix(tokenizer):
    explicit, _ = prepare_preference_dataset([{"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}], tokenizer)
    implicit, report = prepare_preference_dataset(
        [{"chosen": PROMPT + CHOSEN, "rejected": PROMPT + REJECTED}], tokenizer
    )
    assert implicit[0] == explicit[0]
    assert not report.explicit_prompt


def test_conversational_rows_use_the_chat_template_with_generation_prompt(chat_tokenizer):
    prompt = [{"role": "user", "content": "How do I bake bread?"}]
    chosen = [{"role": "assistant", "content": "Mix flour and water."}]
    rejected = [{"role": "assistant", "content": "No idea."}]
    explicit, report = prepare_preference_dataset(
        [{"prompt": prompt, "chosen": chosen, "rejected": rejected}], chat_tokenizer
    )
    implicit, _ = prepare_preference_dataset(
        [{"chosen": prompt + chosen, "rejected": prompt + rejected}], chat_tokenizer
    )
    row = explicit[0]
    assert chat_tokenizer.decode(row["prompt_ids"]) == "<|user|>How do I bake bread?<|endoftext|><|assistant|>"
    assert chat_tokenizer.decode(row["chosen_ids"]) == "Mix flour and water.<|endoftext|>"
    assert chat_tokenizer.decode(row["rejected_ids"]) == "No idea.<|endoftext|>"
    assert implicit[0] == row
    assert report.format == "conversational"


def test_dataset_jsonl_and_list_inputs_give_the_same_rows(tokenizer, tmp_path):
    rows = [
        {"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED},
        {"prompt": "Question: hi?", "chosen": " Hello there.", "rejected": " Go away."},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    compressed_lines = tmp_path / "pairs.jsonl.gz"
    compressed_lines.write_bytes(gzip.compress(path.read_bytes()))
    compressed_array = tmp_path / "pairs.json.gz"
    compressed_array.write_bytes(gzip.compress(json.dumps(rows).encode("utf-8")))
    from_list, _ = prepare_preference_dataset(rows, tokenizer)
    from_file, _ = prepare_preference_dataset(path, tokenizer)
    from_dataset, _ = prepare_preference_dataset(Dataset.from_list(rows), tokenizer)
    from_gzip_lines, _ = prepare_preference_dataset(compressed_lines, tokenizer)
    from_gzip_array, _ = prepare_preference_dataset(str(compressed_array), tokenizer)
    expected = from_list.to_list()
    assert from_file.to_list() == from_dataset.to_list() == expected
    assert from_gzip_lines.to_list() == from_gzip_array.to_list() == expected
    assert len(from_list) == 2


def test_a_gz_file_that_is_not_gzip_is_a_clear_error(tokenizer, tmp_path):
    path = tmp_path / "pairs.jsonl.gz"
    path.write_text(json.dumps({"chosen": "a", "rejected": "b"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"pairs.jsonl.gz ends in .gz but is not gzip-compressed"):
        prepare_preference_dataset(path, tokenizer)


def test_missing_columns_are_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match=r"needs 'chosen' and 'rejected'.*rename"):
        prepare_preference_dataset([{"prompt": "a", "response": "b"}], tokenizer)
    with pytest.raises(ValueError, match="needs 'chosen' and 'rejected'"):
        prepare_preference_dataset(Dataset.from_dict({"prompt": ["a"], "chosen": ["b"]}), tokenizer)


def test_bad_rows_are_skipped_counted_and_logged(tokenizer, caplog):
    rows = [
        {"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED},
        {"prompt": PROMPT, "chosen": CHOSEN, "rejected": CHOSEN},
        {"prompt": PROMPT, "chosen": "  ", "rejected": REJECTED},
        {"prompt": PROMPT, "chosen": 42, "rejected": REJECTED},
        {"prompt": PROMPT, "chosen": CHOSEN, "rejected": None},
        {"prompt": None, "chosen": CHOSEN, "rejected": REJECTED},
        "not a row",
        {"prompt": PROMPT, "chosen": [{"role": "assistant", "content": "hi"}], "rejected": REJECTED},
    ]
    logger = logging.getLogger("hf_genarm")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="hf_genarm"):
            dataset, report = prepare_preference_dataset(rows, tokenizer)
    finally:
        logger.removeHandler(caplog.handler)
    assert len(dataset) == report.kept == 1
    assert report.rows == 8
    assert report.skipped == {
        "chosen equals rejected": 1,
        "empty response": 1,
        "non-string value in 'chosen'": 1,
        "missing value in 'rejected'": 1,
        "missing value in 'prompt'": 1,
        "row is a str, not a dict": 1,
        "'chosen' and 'rejected' mix text and messages": 1,
    }
    assert "kept 1 of 8 rows; skipped 7" in caplog.text


def test_a_typed_dataset_column_of_numbers_is_a_type_error(tokenizer):
    dataset = Dataset.from_dict({"prompt": ["a"], "chosen": [1], "rejected": [2]})
    with pytest.raises(TypeError, match=r"Column 'chosen'.*int64.*strings"):
        prepare_preference_dataset(dataset, tokenizer)


def test_empty_conversational_response_and_implicit_prefix_response_are_skipped(chat_tokenizer):
    prompt = [{"role": "user", "content": "hi"}]
    rows = [
        {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": ""}],
            "rejected": [{"role": "assistant", "content": "x"}],
        },
        {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}],
        },
    ]
    dataset, report = prepare_preference_dataset(rows, chat_tokenizer)
    assert report.skipped == {"empty response": 1} and len(dataset) == 1


@pytest.mark.parametrize("mode", ["keep_end", "keep_start"])
def test_long_prompts_are_truncated_per_truncation_mode_and_counted(tokenizer, mode):
    long_prompt = "Question: " + "the cat sat on the warm mat. " * 6 + "Answer:"
    rows = [
        {"prompt": long_prompt, "chosen": CHOSEN, "rejected": REJECTED},
        {"prompt": "Q:", "chosen": " a", "rejected": " b"},
    ]
    dataset, report = prepare_preference_dataset(
        rows, tokenizer, max_prompt_length=8, max_length=64, truncation_mode=mode
    )
    full_prompt = ids(tokenizer, long_prompt)
    assert len(full_prompt) > 8
    expected = full_prompt[-8:] if mode == "keep_end" else full_prompt[:8]
    assert dataset[0]["prompt_ids"] == expected
    assert dataset[1]["prompt_ids"] == ids(tokenizer, "Q:")
    assert report.prompts_truncated == 1 and report.num_skipped == 0


def test_responses_are_cut_to_max_length_and_full_prompts_skipped(tokenizer):
    rows = [
        {"prompt": "Q:", "chosen": " the cat sat on the warm mat by the fire", "rejected": " no"},
        {"prompt": "the cat sat on the warm mat by the fire", "chosen": " a", "rejected": " b"},
    ]
    dataset, report = prepare_preference_dataset(rows, tokenizer, max_length=6, max_prompt_length=None)
    assert len(dataset) == 1
    assert len(dataset[0]["prompt_ids"]) + len(dataset[0]["chosen_ids"]) == 6
    assert report.responses_truncated == 1
    assert report.skipped == {"prompt fills max_length": 1}


def test_conversational_data_without_chat_template_is_refused_before_tokenizing(tokenizer):
    rows = [
        {
            "chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
            "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "bye"}],
        }
    ]
    with pytest.raises(ValueError, match=r"no chat template.*chat_template"):
        prepare_preference_dataset(rows, tokenizer)


def test_invalid_json_line_names_the_line(tokenizer, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"chosen": "a", "rejected": "b"}) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"Line 2 of .*pairs.jsonl is not valid JSON"):
        prepare_preference_dataset(path, tokenizer)


def test_unsupported_containers_and_settings_are_refused(tokenizer, tmp_path):
    dataset = Dataset.from_list([{"chosen": "a b", "rejected": "a c"}])
    with pytest.raises(TypeError, match="pass one split"):
        prepare_preference_dataset(DatasetDict({"train": dataset}), tokenizer)
    with pytest.raises(TypeError, match="IterableDataset"):
        prepare_preference_dataset(IterableDataset.from_generator(lambda: iter([])), tokenizer)
    with pytest.raises(TypeError, match="list of dicts"):
        prepare_preference_dataset({"chosen": "a", "rejected": "b"}, tokenizer)
    with pytest.raises(FileNotFoundError):
        prepare_preference_dataset(tmp_path / "missing.jsonl", tokenizer)
    with pytest.raises(ValueError, match="truncation_mode"):
        prepare_preference_dataset(dataset, tokenizer, truncation_mode="keep_middle")
    with pytest.raises(ValueError, match="smaller than `max_length`"):
        prepare_preference_dataset(dataset, tokenizer, max_length=8, max_prompt_length=8)


def test_all_rows_unusable_is_an_error_with_the_reasons(tokenizer):
    with pytest.raises(ValueError, match=r"No usable preference pair left.*2 chosen equals rejected"):
        prepare_preference_dataset([{"chosen": "same", "rejected": "same"}] * 2, tokenizer)


def test_collator_pads_right_and_masks_prompt_and_padding():
    collator = PreferenceCollator(pad_token_id=9, pad_to_multiple_of=4)
    batch = collator(
        [
            {"prompt_ids": [1, 2], "chosen_ids": [3, 0], "rejected_ids": [4]},
            {"prompt_ids": [5], "chosen_ids": [6], "rejected_ids": [7, 8, 0]},
        ]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3, 0], [5, 6, 9, 9], [1, 2, 4, 9], [5, 7, 8, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    assert batch["completion_mask"].tolist() == [[0, 0, 1, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 1, 1]]
    assert batch["input_ids"].dtype == torch.long
    with pytest.raises(ValueError, match="prepare_preference_dataset"):
        collator([{"chosen": "text"}])


def test_unknown_roles_and_non_assistant_responses_are_skipped_and_reported(chat_tokenizer):
    user = {"role": "user", "content": "how do I bake bread?"}
    good = [{"role": "assistant", "content": "mix and wait"}]
    bad = [{"role": "assistant", "content": "go away"}]
    rows = [
        {"prompt": [user], "chosen": good, "rejected": bad},
        # ShareGPT-style roles: a template might render them as something else, or drop them.
        {"prompt": [{"role": "human", "content": "hi"}], "chosen": good, "rejected": bad},
        {"prompt": [user], "chosen": [{"role": "bot", "content": "mix and wait"}], "rejected": bad},
        # A response that is not the assistant's turn.
        {"prompt": [user], "chosen": [{"role": "user", "content": "and then?"}], "rejected": bad},
    ]
    dataset, report = prepare_preference_dataset(rows, chat_tokenizer)
    assert report.kept == len(dataset) == 1
    assert report.skipped == {
        "unknown message role 'human' in 'prompt' (expected system, user, assistant or tool)": 1,
        "unknown message role 'bot' in 'chosen' (expected system, user, assistant or tool)": 1,
        "response message with role 'user' (responses must be 'assistant' messages)": 1,
    }
    assert "response message with role 'user'" in report.summary()
    # Implicit prompts: conversations that diverge at a user turn leave a user message in the response.
    implicit = [
        {"chosen": [user, *good], "rejected": [user, *bad]},
        {"chosen": [user, *good], "rejected": [{"role": "user", "content": "what about cake?"}, *bad]},
    ]
    dataset, report = prepare_preference_dataset(implicit, chat_tokenizer)
    assert report.kept == len(dataset) == 1
    assert report.skipped == {"response message with role 'user' (responses must be 'assistant' messages)": 1}
    with pytest.raises(ValueError, match="unknown message role 'human'"):
        prepare_preference_dataset(rows[1:2], chat_tokenizer)


@pytest.mark.parametrize("explicit", [True, False])
def test_a_prompt_ending_with_a_space_splits_where_the_whole_text_tokenizes(tokenizer, explicit):
    # Byte-level BPE merges the prompt's trailing space into the response's first word (" mix"), so tokenizing the
    # prompt alone would end in a lone space token that the whole text never contains.
    prompt, chosen, rejected = "Question: how do I bake bread? Answer: ", "mix flour, then wait.", "go away."
    assert ids(tokenizer, prompt) != ids(tokenizer, prompt + chosen)[: len(ids(tokenizer, prompt))]
    row = (
        {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        if explicit
        else {
            "chosen": prompt + chosen,
            "rejected": prompt + rejected,
        }
    )
    dataset, report = prepare_preference_dataset([row], tokenizer)
    tokenized = dataset[0]
    eos = [tokenizer.eos_token_id]
    assert tokenized["prompt_ids"] + tokenized["chosen_ids"] == ids(tokenizer, prompt + chosen) + eos
    assert tokenized["prompt_ids"] + tokenized["rejected_ids"] == ids(tokenizer, prompt + rejected) + eos
    assert tokenizer.decode(tokenized["prompt_ids"]) == prompt.rstrip()
    assert report.kept == 1


@pytest.mark.parametrize("container", ["list", "dataset"])
def test_a_text_prompt_beside_message_responses_is_never_dropped(chat_tokenizer, container):
    user = {"role": "user", "content": "How do I bake bread?"}
    good = [{"role": "assistant", "content": "Mix flour and water."}]
    bad = [{"role": "assistant", "content": "No idea."}]
    expected, _ = prepare_preference_dataset([{"prompt": [user], "chosen": good, "rejected": bad}], chat_tokenizer)
    rows = [
        # Responses only: the text is the user turn they answer.
        {"prompt": user["content"], "chosen": good, "rejected": bad},
        # The conversation repeats the text as its shared user turn (as in ultrafeedback_binarized).
        {"prompt": user["content"], "chosen": [user, *good], "rejected": [user, *bad]},
        # The text is not the conversation's user turn: which prompt is meant cannot be told.
        {"prompt": "Tell me a joke.", "chosen": [user, *good], "rejected": [user, *bad]},
    ]
    data = Dataset.from_list(rows) if container == "dataset" else rows
    dataset, report = prepare_preference_dataset(data, chat_tokenizer)
    assert report.kept == len(dataset) == 2
    for row in dataset:
        assert row == expected[0]
        assert chat_tokenizer.decode(row["prompt_ids"]) == "<|user|>How do I bake bread?<|endoftext|><|assistant|>"
    assert report.skipped == {"text prompt that is none of the user turns shared by 'chosen' and 'rejected'": 1}


@pytest.mark.parametrize("explicit", [True, False], ids=["explicit", "implicit"])
def test_a_wordpiece_sep_is_no_part_of_a_training_response_as_in_scoring(explicit):
    """A post-processor's trailing `[SEP]` is dropped as scoring drops it; the response ends in EOS, once."""
    from hf_genarm import AutoregressiveRewardModel, score_text
    from hf_genarm.cross_tokenizer_testing import make_tiny_wordpiece_tokenizer

    tokenizer = make_tiny_wordpiece_tokenizer()
    assert tokenizer("The cat")["input_ids"][-1] == tokenizer.sep_token_id != tokenizer.eos_token_id
    row = {"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}
    if not explicit:
        row = {"chosen": PROMPT + CHOSEN, "rejected": PROMPT + REJECTED}
    dataset, _ = prepare_preference_dataset([row], tokenizer)
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer=tokenizer)
    for response, key in ((CHOSEN, "chosen_ids"), (REJECTED, "rejected_ids")):
        ids_ = dataset[0][key]
        assert tokenizer.sep_token_id not in ids_ and ids_.count(tokenizer.eos_token_id) == 1
        assert ids_[-1] == tokenizer.eos_token_id
        assert tokenizer.sep_token_id not in dataset[0]["prompt_ids"]
        tokens, _ = score_text(reward_model, tokenizer, PROMPT, response)
        assert [tokenizer.decode([token]) for token in ids_] == tokens
