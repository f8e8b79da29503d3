"""ARMTrainer: the GenARM loss by hand, learning a preference task, exact resumption, LoRA, bad inputs."""

import json
import os
import random
import re
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainerCallback

from hf_genarm import ARMConfig, ARMTrainer, AutoregressiveRewardModel
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|endoftext|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
# Responses start with different tokens, so the implicit prompt (longest common prefix) is the explicit one.
PAIRS = [
    ("Question: how do I bake bread? Answer:", " mix flour, water, salt and yeast, then wait.", " the worst movie."),
    ("Question: is the cat happy?", " The cat sat on the warm mat.", " I hate waiting in long lines at the bank."),
    ("Life is short;", " eat dessert first.", " this is boring"),
]
HAPPY = ["lovely", "wonderful", "good", "kind"]
SAD = ["awful", "boring", "worst", "bad"]


@pytest.fixture(autouse=True)
def _single_thread():
    # Two cores, possibly shared with another job: one thread is several times faster for tiny models.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def tokenizer():
    tokenizer = make_tiny_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def make_args(tmp_path, **overrides):
    settings = {
        "output_dir": str(tmp_path / "run"),
        "use_cpu": True,
        "report_to": [],
        "dataloader_num_workers": 0,
        "seed": 0,
        "data_seed": 0,
        "disable_tqdm": True,
        "save_strategy": "no",
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 16,
        "logging_steps": 1,
    }
    settings.update(overrides)
    return ARMConfig(**settings)


def rows_in_format(dataset_format):
    rows = []
    for prompt, chosen, rejected in PAIRS:
        if dataset_format == "explicit":
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
        elif dataset_format == "implicit":
            rows.append({"chosen": prompt + chosen, "rejected": prompt + rejected})
        else:
            question = [{"role": "user", "content": prompt}]
            rows.append(
                {
                    "prompt": question,
                    "chosen": [{"role": "assistant", "content": chosen.strip()}],
                    "rejected": [{"role": "assistant", "content": rejected.strip()}],
                }
            )
    return rows


def expected_token_split(tokenizer, dataset_format, prompt, response):
    """Prompt and response ids written out by hand for one pair half."""
    if dataset_format == "conversational":
        prompt_text = f"<|user|>{prompt}<|endoftext|><|assistant|>"
        full_text = f"{prompt_text}{response.strip()}<|endoftext|>"
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
        eos = []
    else:
        prompt_ids = tokenizer(prompt)["input_ids"]
        full_ids = tokenizer(prompt + response)["input_ids"]
        eos = [tokenizer.eos_token_id]
    assert full_ids[: len(prompt_ids)] == prompt_ids, "test pairs must tokenize with the prompt as a prefix"
    return prompt_ids, full_ids[len(prompt_ids) :] + eos


def summed_log_prob(model, prompt_ids, response_ids):
    """sum_t log p(response_t | prompt, response_<t) from one unpadded forward pass, position by position."""
    sequence = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=sequence).logits[0].double(), dim=-1)
    total = torch.zeros((), dtype=torch.float64)
    for position in range(len(prompt_ids), sequence.shape[1]):
        total += log_probs[position - 1, sequence[0, position]]
    return total


@pytest.mark.parametrize("dataset_format", ["explicit", "implicit", "conversational"])
def test_loss_equals_hand_computation_from_per_token_log_probs(tmp_path, tokenizer, dataset_format):
    beta_r = 0.25
    model = make_tiny_causal_lm(seed=3).double()
    trainer = ARMTrainer(
        model,
        args=make_args(tmp_path, beta_r=beta_r),
        train_dataset=rows_in_format(dataset_format),
        processing_class=tokenizer,
    )
    margins, chosen_log_probs = [], []
    for row, (prompt, chosen, rejected) in zip(trainer.train_dataset, PAIRS):
        prompt_ids, chosen_ids = expected_token_split(tokenizer, dataset_format, prompt, chosen)
        _, rejected_ids = expected_token_split(tokenizer, dataset_format, prompt, rejected)
        assert (row["prompt_ids"], row["chosen_ids"], row["rejected_ids"]) == (prompt_ids, chosen_ids, rejected_ids)
        chosen_log_probs.append(summed_log_prob(model, prompt_ids, chosen_ids))
        margins.append(chosen_log_probs[-1] - summed_log_prob(model, prompt_ids, rejected_ids))
    expected_loss = torch.stack([-torch.nn.functional.logsigmoid(beta_r * margin) for margin in margins]).mean()

    batch = trainer.data_collator([trainer.train_dataset[index] for index in range(len(PAIRS))])
    assert batch["attention_mask"].sum(-1).unique().numel() > 1, "the batch must contain padding"
    trainer.model.eval()
    with torch.no_grad():
        loss, rewards = trainer.compute_loss(trainer.model, batch, return_outputs=True)
    assert abs(loss.item() - expected_loss.item()) < 1e-6
    assert torch.allclose(rewards["chosen_rewards"], beta_r * torch.stack(chosen_log_probs), atol=1e-6, rtol=0)
    # The decoding-side reward of the chosen sequences is the same number (computed in float32 there).
    chosen_rows = slice(0, len(PAIRS))
    sequence_rewards = trainer.reward_model.sequence_rewards(
        batch["input_ids"][chosen_rows],
        batch["attention_mask"][chosen_rows],
        response_mask=batch["completion_mask"][chosen_rows],
    )
    assert torch.allclose(sequence_rewards.double(), rewards["chosen_rewards"], atol=1e-4, rtol=0)


def mood_pairs(topics, seed, count):
    """A task a tiny model can learn: the preferred adjective depends on the mood named in the prompt.

    Every adjective is chosen as often as it is rejected, so a model that ignores the prompt scores 0.5.
    """
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        topic = topics[index % len(topics)]
        mood = "happy" if (index // len(topics)) % 2 == 0 else "sad"
        happy, sad = rng.choice(HAPPY), rng.choice(SAD)
        chosen, rejected = (happy, sad) if mood == "happy" else (sad, happy)
        rows.append(
            {
                "prompt": f"Mood: {mood}. Topic: the {topic}. Answer:",
                "chosen": f" The {topic} is {chosen}.",
                "rejected": f" The {topic} is {rejected}.",
            }
        )
    return rows


def test_training_lifts_held_out_preference_accuracy_and_logs_trl_metrics(tmp_path, tokenizer):
    train = mood_pairs(["cat", "dog", "bread", "movie", "meeting", "weather", "food", "fire"], seed=0, count=64)
    held_out = mood_pairs(["window", "journey", "bank", "dessert"], seed=1, count=32)
    args = make_args(
        tmp_path,
        max_steps=80,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        logging_steps=40,
        eval_strategy="steps",
        eval_steps=80,
    )
    trainer = ARMTrainer(
        make_tiny_causal_lm(), args=args, train_dataset=train, eval_dataset=held_out, processing_class=tokenizer
    )
    before = trainer.evaluate()
    started = time.perf_counter()
    trainer.train()
    training_seconds = time.perf_counter() - started
    after = trainer.evaluate()

    assert 0.3 <= before["eval_preference_accuracy"] <= 0.7
    assert after["eval_preference_accuracy"] >= 0.95
    assert after["eval_rewards/accuracies"] >= 0.95
    assert after["eval_rewards/margins"] > before["eval_rewards/margins"]
    assert training_seconds < 60
    train_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    for name in (
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    ):
        assert name in train_logs[-1]
        assert f"eval_{name}" in after
    assert train_logs[-1]["rewards/chosen"] == pytest.approx(0.1 * train_logs[-1]["logps/chosen"])
    # Each logged eval entry carries the same metrics (they were logged during training, too).
    assert any("eval_preference_accuracy" in entry for entry in trainer.state.log_history[:-1])


class StopAtStep(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
        return control


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path, tokenizer):
    rows = mood_pairs(["cat", "dog", "bread", "fire"], seed=2, count=16)

    def run(output_dir, callbacks=None, resume=None):
        args = make_args(
            tmp_path,
            output_dir=str(output_dir),
            max_steps=6,
            save_strategy="steps",
            save_steps=3,
            learning_rate=1e-3,
        )
        trainer = ARMTrainer(
            make_tiny_causal_lm(seed=5), args=args, train_dataset=rows, processing_class=tokenizer, callbacks=callbacks
        )
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    uninterrupted = run(tmp_path / "straight")
    interrupted = run(tmp_path / "interrupted", callbacks=[StopAtStep(3)])
    assert interrupted.state.global_step == 3
    checkpoint = tmp_path / "interrupted" / "checkpoint-3"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "genarm_config.json").is_file()
    resumed = run(tmp_path / "interrupted", resume=str(checkpoint))
    assert resumed.state.global_step == 6

    reference = dict(uninterrupted.model.named_parameters())
    for name, parameter in resumed.model.named_parameters():
        assert torch.allclose(parameter, reference[name], atol=1e-6, rtol=0), name
    initial = dict(make_tiny_causal_lm(seed=5).named_parameters())
    assert any(not torch.allclose(parameter, initial[name]) for name, parameter in reference.items())


def test_gradient_accumulation_matches_one_large_batch(tmp_path, tokenizer):
    rows = mood_pairs(["cat", "dog"], seed=3, count=4)
    weights = []
    for batch_size, accumulation in ((4, 1), (2, 2)):
        args = make_args(
            tmp_path,
            max_steps=1,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            learning_rate=1e-2,
            max_grad_norm=0.0,
            optim="sgd",
        )
        trainer = ARMTrainer(make_tiny_causal_lm(seed=1), args=args, train_dataset=rows, processing_class=tokenizer)
        trainer.train()
        weights.append(dict(trainer.model.named_parameters()))
    for name, parameter in weights[0].items():
        assert torch.allclose(parameter, weights[1][name], atol=1e-6, rtol=0), name


def test_lora_run_saves_only_the_adapter_and_loads_and_merges_as_a_reward_model(tmp_path, tokenizer):
    from peft import LoraConfig

    base_dir = tmp_path / "base"
    make_tiny_causal_lm(seed=4).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    args = make_args(tmp_path, max_steps=3, learning_rate=5e-2)
    trainer = ARMTrainer(
        str(base_dir),
        args=args,
        train_dataset=mood_pairs(["cat", "dog"], seed=4, count=8),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], task_type="CAUSAL_LM"),
    )
    trainer.train()
    saved = tmp_path / "adapter"
    trainer.save_model(str(saved))

    files = {path.name for path in saved.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "genarm_config.json", "README.md"} <= files
    assert not files & {"model.safetensors", "pytorch_model.bin", "adapter_model.bin"}
    sidecar = json.loads((saved / "genarm_config.json").read_text())
    assert sidecar["beta_r"] == 0.1 and sidecar["base_model"] == str(base_dir)

    batch = tokenizer(["Mood: happy. Topic: the cat. Answer: The cat is good."], return_tensors="pt")
    trained = trainer.reward_model.eval().sequence_rewards(**batch, prompt_length=10)
    loaded = AutoregressiveRewardModel.from_pretrained(saved)
    assert loaded.is_peft_model and loaded.beta_r == 0.1
    assert torch.allclose(loaded.sequence_rewards(**batch, prompt_length=10), trained, atol=1e-6)
    merged = loaded.merge_adapter()
    assert not merged.is_peft_model
    assert torch.allclose(merged.sequence_rewards(**batch, prompt_length=10), trained, atol=1e-5)
    base = AutoregressiveRewardModel.from_pretrained(base_dir, beta_r=0.1)
    assert not torch.allclose(base.sequence_rewards(**batch, prompt_length=10), trained, atol=1e-4)


def test_bad_rows_are_skipped_and_counted_and_training_still_runs(tmp_path, tokenizer):
    rows = [
        *mood_pairs(["cat", "dog"], seed=5, count=4),
        {"prompt": "Q:", "chosen": " same", "rejected": " same"},
        {"prompt": "Q:", "chosen": "", "rejected": " b"},
        {"prompt": "Q:", "chosen": 7, "rejected": " b"},
        {"prompt": "Question: " + "the cat sat on the mat. " * 8, "chosen": " yes", "rejected": " no"},
    ]
    trainer = ARMTrainer(
        make_tiny_causal_lm(),
        args=make_args(tmp_path, max_steps=2, max_prompt_length=32, max_length=64),
        train_dataset=rows,
        processing_class=tokenizer,
    )
    report = trainer.data_reports["train_dataset"]
    assert report.skipped == {"chosen equals rejected": 1, "empty response": 1, "non-string value in 'chosen'": 1}
    assert report.prompts_truncated == 1 and report.kept == 5
    assert all(len(row["prompt_ids"]) <= 32 for row in trainer.train_dataset)
    assert trainer.train().global_step == 2


def test_model_can_be_an_autoregressive_reward_model_and_keeps_its_metadata(tmp_path, tokenizer):
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(), beta_r=0.3, tokenizer=tokenizer)
    reward_model.metadata.datasets = ["earlier-data"]
    trainer = ARMTrainer(
        reward_model,
        args=make_args(tmp_path, beta_r=0.3, max_steps=1),
        train_dataset=str(write_jsonl(tmp_path / "pairs.jsonl", mood_pairs(["cat"], seed=6, count=4))),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model()
    sidecar = json.loads((tmp_path / "run" / "genarm_config.json").read_text())
    assert sidecar["beta_r"] == 0.3
    assert sidecar["datasets"] == ["earlier-data", "pairs.jsonl"]
    assert sidecar["tokenizer"]["vocab_size"] == len(tokenizer)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_wrong_arguments_fail_early_with_the_fix(tmp_path, tokenizer):
    rows = mood_pairs(["cat"], seed=7, count=2)
    from transformers import TrainingArguments

    with pytest.raises(TypeError, match="must be an ARMConfig"):
        ARMTrainer(make_tiny_causal_lm(), args=TrainingArguments(output_dir=str(tmp_path)), train_dataset=rows)
    with pytest.raises(ValueError, match="requires a train_dataset"):
        ARMTrainer(make_tiny_causal_lm(), args=make_args(tmp_path), processing_class=tokenizer).train()
    with pytest.raises(ValueError, match="resize_token_embeddings"):
        ARMTrainer(
            make_tiny_causal_lm(vocab_size=300),
            args=make_args(tmp_path),
            train_dataset=rows,
            processing_class=tokenizer,
        )
    with pytest.raises(ValueError, match="`processing_class` is required"):
        ARMTrainer(make_tiny_causal_lm(), args=make_args(tmp_path), train_dataset=rows)
    with pytest.raises(TypeError, match="`model` must be"):
        ARMTrainer(object(), args=make_args(tmp_path), train_dataset=rows, processing_class=tokenizer)
    with pytest.raises(ValueError, match="trust_remote_code"):
        ARMTrainer(
            "some/model",
            args=make_args(tmp_path, model_init_kwargs={"trust_remote_code": True}),
            train_dataset=rows,
            processing_class=tokenizer,
        )
    with pytest.raises(ValueError, match="beta_r"):
        make_args(tmp_path, beta_r=0.0)
    with pytest.raises(ValueError, match="truncation_mode"):
        make_args(tmp_path, truncation_mode="middle")
    with pytest.raises(ValueError, match="smaller than `max_length`"):
        make_args(tmp_path, max_length=64, max_prompt_length=64)


def test_config_parses_from_the_command_line(tmp_path):
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(ARMConfig).parse_args_into_dataclasses(
        [
            "--output_dir",
            str(tmp_path),
            "--beta_r",
            "0.05",
            "--truncation_mode",
            "keep_start",
            "--max_prompt_length",
            "128",
            "--model_init_kwargs",
            '{"dtype": "float32"}',
        ]
    )
    assert (args.beta_r, args.truncation_mode, args.max_prompt_length) == (0.05, "keep_start", 128)
    assert args.model_init_kwargs == {"dtype": "float32"}


def test_default_beta_r_is_the_package_default(tmp_path):
    from hf_genarm.configuration import DEFAULT_BETA_R

    assert ARMConfig(output_dir=str(tmp_path)).beta_r == DEFAULT_BETA_R


def test_preference_accuracy_metric_loads_offline_from_the_package():
    import evaluate
    import numpy as np
    from transformers import EvalPrediction

    from hf_genarm.metrics import PREFERENCE_ACCURACY_PATH, compute_preference_metrics

    metric = evaluate.load(PREFERENCE_ACCURACY_PATH, keep_in_memory=True)
    result = metric.compute(chosen_rewards=[1.0, 0.5, 2.0, -1.0], rejected_rewards=[0.0, 0.5, 1.0, 3.0])
    assert result == {"accuracy": 0.5}  # the tie counts as a miss, as in TRL's rewards/accuracies
    rewards = np.array([[1.0, 0.0], [0.5, 0.5], [2.0, 1.0], [-1.0, 3.0]])
    assert compute_preference_metrics(EvalPrediction(predictions=rewards, label_ids=np.zeros(4))) == {
        "preference_accuracy": 0.5
    }
    with pytest.raises(ValueError, match="num_pairs, 2"):
        compute_preference_metrics(EvalPrediction(predictions=np.zeros(4), label_ids=np.zeros(4)))


def pair_rewards(trainer, reward_model):
    """Chosen and rejected rewards of every pair of `trainer.eval_dataset`, from the reward model's own read-out."""
    batch = trainer.data_collator(list(trainer.eval_dataset))
    with torch.no_grad():
        rewards = reward_model.eval().sequence_rewards(
            batch["input_ids"], batch["attention_mask"], response_mask=batch["completion_mask"]
        )
    return rewards.chunk(2)


def test_a_trainer_without_train_dataset_evaluates_a_saved_reward_model(tmp_path, tokenizer):
    released = tmp_path / "released"
    AutoregressiveRewardModel(make_tiny_causal_lm(seed=8), beta_r=0.2, tokenizer=tokenizer).save_pretrained(
        released, tokenizer=tokenizer
    )
    rows = mood_pairs(["cat", "dog", "bread"], seed=9, count=9)
    trainer = ARMTrainer(str(released), args=make_args(tmp_path, beta_r=0.2), eval_dataset=rows)

    metrics = trainer.evaluate()
    chosen, rejected = pair_rewards(trainer, AutoregressiveRewardModel.from_pretrained(released))
    assert metrics["eval_preference_accuracy"] == pytest.approx((chosen > rejected).double().mean().item())
    assert metrics["eval_rewards/margins"] == pytest.approx((chosen - rejected).mean().item(), abs=1e-5)
    assert metrics["eval_rewards/chosen"] == pytest.approx(chosen.mean().item(), abs=1e-5)
    with pytest.raises(ValueError, match="requires a train_dataset"):
        trainer.train()


def test_logged_accuracy_is_exact_per_pair_when_the_last_batch_is_smaller(tmp_path, tokenizer):
    model = make_tiny_causal_lm(seed=11)
    pool = mood_pairs(["cat", "dog", "bread", "movie"], seed=10, count=32)
    scorer = ARMTrainer(model, args=make_args(tmp_path), eval_dataset=pool, processing_class=tokenizer)
    chosen, rejected = pair_rewards(scorer, scorer.reward_model)
    right = [row for row, won in zip(pool, (chosen > rejected).tolist()) if won]
    wrong = [row for row, won in zip(pool, (chosen > rejected).tolist()) if not won]
    assert len(right) >= 5 and len(wrong) >= 2, "the pool must hold both kinds of pairs"
    # Batches of 4: all four right, then one of three right. Per-batch means would average to 2/3; exact is 5/7.
    rows = [*right[:5], *wrong[:2]]
    trainer = ARMTrainer(
        model, args=make_args(tmp_path, per_device_eval_batch_size=4), eval_dataset=rows, processing_class=tokenizer
    )
    metrics = trainer.evaluate()
    assert metrics["eval_preference_accuracy"] == pytest.approx(5 / 7)
    assert metrics["eval_rewards/accuracies"] == pytest.approx(5 / 7)
    chosen, rejected = pair_rewards(trainer, trainer.reward_model)
    assert metrics["eval_rewards/margins"] == pytest.approx((chosen - rejected).mean().item(), abs=1e-5)


def test_beta_r_has_one_source_and_the_model_is_wrapped_once(tmp_path, tokenizer):
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=12), beta_r=0.3, tokenizer=tokenizer)
    trainer = ARMTrainer(
        reward_model,
        args=make_args(tmp_path, beta_r=0.3),
        train_dataset=mood_pairs(["cat"], seed=13, count=4),
        processing_class=tokenizer,
    )
    # The object the user passed is the one trained and handed back, around the very module Trainer trains.
    assert trainer.reward_model is reward_model and reward_model.model is trainer.model

    trainer.args.beta_r = 0.7  # a later change reaches the loss and the saved metadata alike
    batch = trainer.data_collator([trainer.train_dataset[index] for index in range(4)])
    with torch.no_grad():
        loss, rewards = trainer.compute_loss(trainer.model.eval(), batch, return_outputs=True)
        chosen, rejected = trainer.reward_model.sequence_rewards(
            batch["input_ids"], batch["attention_mask"], response_mask=batch["completion_mask"]
        ).chunk(2)
    assert trainer.reward_model.beta_r == 0.7
    assert torch.allclose(rewards["chosen_rewards"], chosen, atol=1e-5)
    expected = -torch.nn.functional.logsigmoid(chosen - rejected).mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    trainer.save_model()
    assert json.loads((tmp_path / "run" / "genarm_config.json").read_text())["beta_r"] == 0.7


def test_push_to_hub_saves_the_model_once_then_uploads_that_folder(tmp_path, tokenizer, monkeypatch):
    from huggingface_hub.errors import OfflineModeIsEnabled

    trainer = ARMTrainer(
        make_tiny_causal_lm(seed=14),
        args=make_args(tmp_path, hub_model_id="alice/arm"),
        train_dataset=mood_pairs(["cat"], seed=15, count=4),
        processing_class=tokenizer,
    )
    saves = []
    model_class = type(trainer.model)
    original_save = model_class.save_pretrained

    def counting_save(model, *args, **kwargs):
        saves.append(args[0] if args else kwargs.get("save_directory"))
        return original_save(model, *args, **kwargs)

    monkeypatch.setattr(model_class, "save_pretrained", counting_save)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineModeIsEnabled):
        trainer.push_to_hub()
    # Saved once (into a staging folder beside the run folder, swapped into place); the upload reads that folder.
    assert len(saves) == 1 and os.path.dirname(saves[0]) == str(tmp_path)
    assert os.path.basename(saves[0]).startswith(".run.hf-genarm-save.")
    assert (tmp_path / "run" / "genarm_config.json").is_file() and (tmp_path / "run" / "README.md").is_file()


# ------------------------------------------------------------------------------------------ saved folders
ADAPTER_FILES = {"adapter_config.json", "adapter_model.safetensors"}
FULL_MODEL_FILES = {"config.json", "model.safetensors", "model.safetensors.index.json"}
LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["c_attn"], "task_type": "CAUSAL_LM"}


def folder_files(folder):
    return {path.name for path in folder.iterdir() if path.is_file()}


def shard_files(folder):
    return {name for name in folder_files(folder) if name.startswith("model-")}


def train_into(folder, tokenizer, tmp_path, lora=False, **overrides):
    """One step of training (checkpoint-1 saved) with `output_dir=folder`, then the final save; the trainer."""
    from peft import LoraConfig

    base = tmp_path / "base"  # a folder, so that adapters record the base they load on
    if not base.is_dir():
        make_tiny_causal_lm(seed=21).save_pretrained(base)
    settings = {"output_dir": str(folder), "max_steps": 1, "save_strategy": "steps", "save_steps": 1, **overrides}
    trainer = ARMTrainer(
        str(base),
        args=make_args(tmp_path, **settings),
        train_dataset=mood_pairs(["cat", "dog"], seed=22, count=4),
        processing_class=tokenizer,
        peft_config=LoraConfig(**LORA) if lora else None,
    )
    trainer.train()
    trainer.save_model()
    return trainer


def assert_holds_only(folder, trainer, tokenizer):
    """`folder` holds one model, of the trainer's kind, and loads as the trained reward model."""
    files = folder_files(folder)
    if trainer.reward_model.is_peft_model:
        assert files >= ADAPTER_FILES and not (FULL_MODEL_FILES | shard_files(folder)) & files, files
    else:
        assert {"config.json", "model.safetensors"} <= files and not ADAPTER_FILES & files, files
        assert not shard_files(folder) and "model.safetensors.index.json" not in files, files
    assert not [path.name for path in folder.iterdir() if path.name.startswith(".")], "no staging folder left"
    batch = tokenizer(["Mood: happy. Topic: the cat. Answer: The cat is good."], return_tensors="pt")
    loaded = AutoregressiveRewardModel.from_pretrained(folder)
    assert loaded.is_peft_model == trainer.reward_model.is_peft_model
    trained = trainer.reward_model.eval().sequence_rewards(**batch, prompt_length=10)
    assert torch.allclose(loaded.sequence_rewards(**batch, prompt_length=10), trained, atol=1e-6)


def test_runs_saved_into_an_earlier_runs_folder_leave_exactly_the_new_model(tmp_path, tokenizer):
    folder = tmp_path / "arm"
    # An earlier sharded save (what save_pretrained(max_shard_size=...) writes for a large model).
    AutoregressiveRewardModel(make_tiny_causal_lm(seed=20)).save_pretrained(folder, max_shard_size="100KB")
    assert len(shard_files(folder)) > 1 and "model.safetensors.index.json" in folder_files(folder)
    (folder / "notes.txt").write_text("mine", encoding="utf-8")

    lora_run = train_into(folder, tokenizer, tmp_path, lora=True)  # LoRA over a sharded full model
    assert_holds_only(folder, lora_run, tokenizer)
    assert_holds_only(folder / "checkpoint-1", lora_run, tokenizer)

    full_run = train_into(folder, tokenizer, tmp_path)  # full model over a LoRA run, checkpoint-1 included
    assert_holds_only(folder, full_run, tokenizer)
    assert_holds_only(folder / "checkpoint-1", full_run, tokenizer)
    assert {"optimizer.pt", "trainer_state.json"} <= folder_files(folder / "checkpoint-1")

    lora_run = train_into(folder, tokenizer, tmp_path, lora=True)  # and back
    assert_holds_only(folder, lora_run, tokenizer)
    assert_holds_only(folder / "checkpoint-1", lora_run, tokenizer)
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_model_files_hf_genarm_did_not_write_are_refused_before_training(tmp_path, tokenizer):
    def trainer_for(folder, **overrides):
        return ARMTrainer(
            make_tiny_causal_lm(seed=23),
            args=make_args(tmp_path, output_dir=str(folder), max_steps=1, **overrides),
            train_dataset=mood_pairs(["cat"], seed=24, count=4),
            processing_class=tokenizer,
        )

    someone_elses = tmp_path / "plain"
    make_tiny_causal_lm(seed=25).save_pretrained(someone_elses)
    before = (someone_elses / "model.safetensors").read_bytes()
    files = r" already holds model files that hf-genarm did not write \(config.json, .*model.safetensors\)"
    fix = r"another folder, or pass `ARMConfig\(overwrite_output_dir=True\)` \(`--overwrite_output_dir`"
    with pytest.raises(ValueError, match=re.escape(str(someone_elses)) + files + ".*" + fix):
        trainer_for(someone_elses)
    assert (someone_elses / "model.safetensors").read_bytes() == before

    # Checked again when training starts: the folder may have changed since the trainer was built.
    run = tmp_path / "run"
    trainer = trainer_for(run)
    run.mkdir(exist_ok=True)
    (run / "pytorch_model.bin").write_bytes(b"not ours")
    with pytest.raises(ValueError, match=r"pytorch_model\.bin"):
        trainer.train()
    assert trainer.state.global_step == 0

    # Checkpoint folders a run writes into are checked too, when the run saves checkpoints.
    (run / "pytorch_model.bin").unlink()
    make_tiny_causal_lm(seed=25).save_pretrained(run / "checkpoint-1")
    with pytest.raises(ValueError, match=r"checkpoint-1 already holds model files"):
        trainer_for(run, save_strategy="steps", save_steps=1)
    trainer_for(run)  # a run that saves no checkpoint does not write there
    # What Trainer writes beside a checkpoint's model to resume from (plain, multi-process, FSDP) is not a model.
    shutil.rmtree(run / "checkpoint-1")
    AutoregressiveRewardModel(make_tiny_causal_lm(seed=25)).save_pretrained(run / "checkpoint-2")
    for name in ("optimizer.pt", "scheduler.pt", "rng_state_1.pth", "optimizer.bin", "pytorch_model_fsdp.bin"):
        (run / "checkpoint-2" / name).write_bytes(b"training state")
    trainer_for(run, save_strategy="steps", save_steps=1)

    trainer = trainer_for(someone_elses, overwrite_output_dir=True)
    trainer.train()
    trainer.save_model()
    assert_holds_only(someone_elses, trainer, tokenizer)


def test_the_command_line_refuses_someone_elses_model_and_replaces_its_own_runs(tmp_path, tokenizer, capsys):
    from hf_genarm.cli import main

    base = tmp_path / "base"
    make_tiny_causal_lm(seed=26).save_pretrained(base)
    tokenizer.save_pretrained(base)
    data = tmp_path / "pairs.jsonl"
    write_jsonl(data, mood_pairs(["cat"], seed=27, count=4))
    output_dir = tmp_path / "arm"
    make_tiny_causal_lm(seed=28).save_pretrained(output_dir)
    command = [
        "train", "--model", str(base), "--dataset", str(data), "--output_dir", str(output_dir), "--max_steps", "1",
        "--per_device_train_batch_size", "2", "--use_cpu", "--disable_tqdm", "true",
    ]  # fmt: skip
    lora = ["--lora", "--lora_r", "4", "--lora_alpha", "8", "--lora_target_modules", "c_attn"]

    assert main([*command, *lora]) == 1
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith(f"hf-genarm: error: {output_dir} already holds model files that hf-genarm did not write")
    assert "--overwrite_output_dir" in error
    assert main([*command, *lora, "--overwrite_output_dir", "true"]) == 0
    assert AutoregressiveRewardModel.from_pretrained(output_dir).is_peft_model
    assert not FULL_MODEL_FILES & folder_files(output_dir)
    assert main(command) == 0  # a full run over its own LoRA run needs no flag
    assert not AutoregressiveRewardModel.from_pretrained(output_dir).is_peft_model
    assert not ADAPTER_FILES & folder_files(output_dir)


def test_pushes_during_training_upload_output_dir_holding_only_the_checkpoints_reward_model(
    tmp_path, tokenizer, monkeypatch
):
    from concurrent.futures import Future

    uploaded = []

    class RecordingHub:
        """What `Trainer` calls on the Hub when `push_to_hub=True`; records what each upload would send."""

        def create_repo(self, repo_id, **kwargs):
            return SimpleNamespace(repo_id=repo_id)

        def upload_folder(self, *, folder_path, **kwargs):
            uploaded.append(folder_files(Path(folder_path)))
            done = Future()
            done.set_result(None)
            return done

    monkeypatch.setattr("transformers.trainer.hf_api", RecordingHub)
    folder = tmp_path / "arm"
    train_into(folder, tokenizer, tmp_path, lora=True)  # an earlier LoRA run's save
    (folder / "README.md").write_text("my card", encoding="utf-8")
    trainer = ARMTrainer(
        str(tmp_path / "base"),
        args=make_args(
            tmp_path, output_dir=str(folder), push_to_hub=True, hub_model_id="alice/arm", beta_r=0.3, max_steps=1,
            save_strategy="steps", save_steps=1,
        ),
        train_dataset=mood_pairs(["cat"], seed=29, count=4),
        processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()  # pushes checkpoint-1 from output_dir; no save_model yet

    assert len(uploaded) == 1 and not ADAPTER_FILES & uploaded[0] and "genarm_config.json" in uploaded[0]
    assert_holds_only(folder, trainer, tokenizer)
    assert json.loads((folder / "genarm_config.json").read_text())["beta_r"] == 0.3
    assert (folder / "README.md").read_text(encoding="utf-8") == "my card"


def lora_config():
    from peft import LoraConfig

    return LoraConfig(r=2, target_modules=["c_attn"], task_type="CAUSAL_LM")


def saved_arm(folder, tokenizer):
    AutoregressiveRewardModel(make_tiny_causal_lm(seed=4), tokenizer=tokenizer).save_pretrained(
        folder, tokenizer=tokenizer
    )
    return sorted(path.name for path in Path(folder).iterdir())


def test_an_adapter_run_into_its_base_models_folder_is_refused_before_training(tmp_path, tokenizer, monkeypatch):
    before = saved_arm(tmp_path / "arm", tokenizer)
    rows = mood_pairs(["cat"], seed=1, count=4)
    with monkeypatch.context() as patched:
        # Refused before the model is even loaded.
        patched.setattr(AutoregressiveRewardModel, "from_pretrained", None)
        for overwrite in (False, True):
            with pytest.raises(ValueError, match="holds the base model of the adapter being saved"):
                ARMTrainer(
                    str(tmp_path / "arm"),
                    args=make_args(tmp_path, output_dir=str(tmp_path / "arm"), overwrite_output_dir=overwrite),
                    train_dataset=rows,
                    peft_config=lora_config(),
                )
    assert sorted(path.name for path in (tmp_path / "arm").iterdir()) == before
    # Without a training set the check waits for train(); saving the adapter there is refused as well.
    trainer = ARMTrainer(
        str(tmp_path / "arm"), args=make_args(tmp_path, output_dir=str(tmp_path / "arm")), peft_config=lora_config()
    )
    with pytest.raises(ValueError, match="holds the base model of the adapter being saved"):
        trainer.train()
    with pytest.raises(ValueError, match="holds the base model of the adapter being saved"):
        trainer.save_model()
    assert sorted(path.name for path in (tmp_path / "arm").iterdir()) == before


def test_a_tokenizer_other_than_the_recorded_one_is_refused(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM

    saved_arm(tmp_path / "arm", tokenizer)
    other = make_tiny_tokenizer(vocab_size=380)
    rows = mood_pairs(["cat"], seed=1, count=4)
    with pytest.raises(ValueError, match="`processing_class` differs from the tokenizer the reward model records"):
        ARMTrainer(str(tmp_path / "arm"), args=make_args(tmp_path), train_dataset=rows, processing_class=other)
    # Tokenizer files written over the saved ones contradict genarm_config.json: the folder's tokenizer is refused.
    other.save_pretrained(tmp_path / "arm")
    with pytest.raises(ValueError, match=r"tokenizer saved in .*arm differs from the tokenizer .*genarm_config\.json"):
        ARMTrainer(str(tmp_path / "arm"), args=make_args(tmp_path), train_dataset=rows)
    # Retraining on another tokenizer on purpose starts from the plain causal LM, which records none.
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "arm")
    trainer = ARMTrainer(plain, args=make_args(tmp_path), train_dataset=rows, processing_class=other)
    assert trainer.reward_model.metadata.tokenizer["vocab_size"] == len(other)


def test_resuming_from_a_checkpoint_of_the_other_kind_is_refused_before_loading_it(tmp_path, tokenizer):
    base_dir = tmp_path / "base"
    make_tiny_causal_lm(seed=4).save_pretrained(base_dir)
    rows = mood_pairs(["cat"], seed=1, count=4)
    for name, peft_config in (("lora", lora_config()), ("full", None)):
        args = make_args(tmp_path, output_dir=str(tmp_path / name), max_steps=1, save_strategy="steps", save_steps=1)
        ARMTrainer(
            str(base_dir), args=args, train_dataset=rows, processing_class=tokenizer, peft_config=peft_config
        ).train()
    for trained, resumed, saved in (("lora", "full", "a PEFT adapter"), ("full", "lora", "a full model")):
        args = make_args(tmp_path, output_dir=str(tmp_path / trained), max_steps=2, save_strategy="steps", save_steps=1)
        trainer = ARMTrainer(
            str(base_dir),
            args=args,
            train_dataset=rows,
            processing_class=tokenizer,
            peft_config=lora_config() if resumed == "lora" else None,
        )
        with pytest.raises(ValueError, match=f"holds {saved} but this run trains"):
            trainer.train(resume_from_checkpoint=str(tmp_path / trained / "checkpoint-1"))
        with pytest.raises(ValueError, match=f"holds {saved} but this run trains"):
            trainer.train(resume_from_checkpoint=True)
        assert trainer.state.global_step == 0


def test_the_training_loss_keeps_dropout_as_configured(tmp_path, tokenizer):
    causal_lm = make_tiny_causal_lm(seed=4)
    for module in causal_lm.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.5
    trainer = ARMTrainer(
        causal_lm,
        args=make_args(tmp_path, disable_dropout=False),
        train_dataset=mood_pairs(["cat"], seed=1, count=4),
        processing_class=tokenizer,
    )
    batch = trainer.data_collator([trainer.train_dataset[index] for index in range(4)])
    trainer.model.train()
    with torch.no_grad():
        first, second = (trainer.compute_loss(trainer.model, batch) for _ in range(2))
    assert not torch.isclose(first, second)
