"""The shared argument validators and `genarm_config.json` (RewardModelMetadata): round trips and damaged files."""

import json
import math

import pytest
import torch

from hf_genarm.configuration import (
    GENARM_CONFIG_NAME,
    GENARM_FORMAT_VERSION,
    RewardModelMetadata,
    validate_alpha,
    validate_beta,
    validate_beta_r,
    validate_positive_length,
)


@pytest.mark.parametrize("validator", [validate_beta_r, validate_beta])
def test_scales_must_be_finite_positive_floats(validator):
    assert validator(2) == 2.0 and isinstance(validator(2), float)
    for bad in (0, -0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="finite float > 0"):
            validator(bad)
    for bad in (True, "0.1", None, [0.1]):
        with pytest.raises(TypeError, match="positive float"):
            validator(bad)
    with pytest.raises(ValueError, match="`--beta-r`"):
        validator(-1.0, name="--beta-r")


def test_alpha_accepts_a_float_a_list_or_per_row_weights_and_nothing_else():
    assert validate_alpha(0.5, num_models=2).tolist() == [[0.5, 0.5]]
    assert validate_alpha([1, -0.5], num_models=2).tolist() == [[1.0, -0.5]]
    per_row = validate_alpha(torch.tensor([[1.0], [0.0], [2.0]], dtype=torch.float64), num_models=1)
    assert per_row.dtype == torch.float32 and per_row.shape == (3, 1)
    with pytest.raises(ValueError, match="2 weight\\(s\\) per row but there are 3"):
        validate_alpha([1.0, 2.0], num_models=3)
    with pytest.raises(ValueError, match="must be finite"):
        validate_alpha([1.0, math.inf], num_models=2)
    with pytest.raises(TypeError, match="bool"):
        validate_alpha(True, num_models=1)
    with pytest.raises(TypeError, match="only floats"):
        validate_alpha([1.0, "2"], num_models=2)
    with pytest.raises(ValueError, match="1-D or"):
        validate_alpha(torch.ones(1, 1, 1), num_models=1)


def test_lengths_are_positive_ints():
    assert validate_positive_length(None, "max_length") is None
    assert validate_positive_length(8, "max_length") == 8
    with pytest.raises(TypeError, match="`max_new_tokens` must be a positive int, got NoneType"):
        validate_positive_length(None, "max_new_tokens", allow_none=False)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="`max_length`"):
            validate_positive_length(bad, "max_length")
    for bad in (True, 2.0, "8"):
        with pytest.raises(TypeError, match="`max_length`"):
            validate_positive_length(bad, "max_length")


def test_metadata_round_trips_through_its_file(tmp_path):
    metadata = RewardModelMetadata(
        beta_r=0.3,
        base_model="org/base",
        tokenizer={"vocab_size": 12, "vocab_sha256": "ab" * 32, "special_tokens": {"eos_token": "</s>"}},
        datasets=["org/data"],
        metrics={"eval_loss": 0.5, "eval_steps": 3},
        library_version="0.1.0",
    )
    path = tmp_path / GENARM_CONFIG_NAME
    metadata.to_json_file(path)
    assert RewardModelMetadata.from_json_file(path) == metadata
    newer_keys = {**json.loads(path.read_text()), "added_by_a_newer_minor_version": [1, 2]}
    path.write_text(json.dumps(newer_keys))
    assert RewardModelMetadata.from_json_file(path) == metadata


DAMAGED = {
    "invalid JSON": ('{"beta_r": 0.1,', "is not valid JSON"),
    "null": ("null", "must hold a JSON object, got null"),
    "a list": ("[0.1]", "must hold a JSON object, got list"),
    "beta_r missing": ('{"format_version": 1}', "field `beta_r` is missing"),
    "format_version missing": ('{"beta_r": 0.1}', "field `format_version` is missing"),
    "beta_r a string": ('{"beta_r": "0.1", "format_version": 1}', "`beta_r` must be a positive float"),
    "beta_r negative": ('{"beta_r": -1, "format_version": 1}', "`beta_r` must be a finite float > 0"),
    "beta_r NaN": ('{"beta_r": NaN, "format_version": 1}', "`beta_r` must be a finite float > 0"),
    "base_model a number": ('{"beta_r": 0.1, "format_version": 1, "base_model": 3}', "`base_model` must be a string"),
    "tokenizer a string": ('{"beta_r": 0.1, "format_version": 1, "tokenizer": "gpt2"}', "`tokenizer` must be"),
    "tokenizer without size": (
        '{"beta_r": 0.1, "format_version": 1, "tokenizer": {"vocab_sha256": "ab"}}',
        "`tokenizer.vocab_size` must be a positive int",
    ),
    "datasets a string": ('{"beta_r": 0.1, "format_version": 1, "datasets": "pairs"}', "`datasets` must be a list"),
    "metrics a list": ('{"beta_r": 0.1, "format_version": 1, "metrics": [0.5]}', "`metrics` must map"),
    "future format": (
        f'{{"beta_r": 0.1, "format_version": {GENARM_FORMAT_VERSION + 1}}}',
        "written by a newer hf-genarm",
    ),
    "format_version a bool": ('{"beta_r": 0.1, "format_version": true}', "`format_version` must be a positive int"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_or_foreign_file_gets_one_error_naming_the_file_and_the_field(tmp_path, case):
    content, message = DAMAGED[case]
    path = tmp_path / GENARM_CONFIG_NAME
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as raised:
        RewardModelMetadata.from_json_file(path)
    assert str(path) in str(raised.value)


def test_metadata_with_wrong_fields_cannot_be_built_or_written(tmp_path):
    with pytest.raises(TypeError, match="`datasets`"):
        RewardModelMetadata(datasets="pairs")
    metadata = RewardModelMetadata()
    metadata.metrics = {"eval_loss": "low"}
    with pytest.raises(TypeError, match="`metrics`"):
        metadata.to_json_file(tmp_path / GENARM_CONFIG_NAME)
    assert not (tmp_path / GENARM_CONFIG_NAME).exists()


def test_an_unknown_field_is_ignored_with_a_warning_naming_it_and_the_file(tmp_path, caplog):
    import logging

    path = tmp_path / GENARM_CONFIG_NAME
    RewardModelMetadata(beta_r=0.3).to_json_file(path)
    path.write_text(json.dumps({**json.loads(path.read_text()), "beta-r": 0.7}))
    with caplog.at_level(logging.WARNING):
        assert RewardModelMetadata.from_json_file(path).beta_r == 0.3
    assert "beta-r" in caplog.text and str(path) in caplog.text
    caplog.clear()
    RewardModelMetadata(beta_r=0.3).to_json_file(path)
    with caplog.at_level(logging.WARNING):
        RewardModelMetadata.from_json_file(path)
    assert "does not know" not in caplog.text


def test_a_file_with_a_byte_order_mark_reads_as_the_same_metadata(tmp_path):
    path = tmp_path / GENARM_CONFIG_NAME
    RewardModelMetadata(beta_r=0.3).to_json_file(path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert RewardModelMetadata.from_json_file(path) == RewardModelMetadata(beta_r=0.3)
