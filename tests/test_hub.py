"""Hub round trips against a local stand-in of the Hub's HTTP API, plus model-card rendering.

The stand-in is a small in-process HTTP server implementing the endpoints the real `huggingface_hub` client
calls (repo creation, preupload, commit, branch, README validation, file resolution, repo info). The client,
transformers' `cached_file` and PEFT run their real code paths against it; nothing leaves the machine.
"""

import base64
import hashlib
import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import huggingface_hub
import pytest
import torch
import transformers.utils.hub
import yaml
from huggingface_hub import HfApi, ModelCard, constants
from huggingface_hub.errors import OfflineModeIsEnabled
from transformers import AutoModelForCausalLM

from hf_genarm import ARMConfig, ARMTrainer, AutoregressiveRewardModel, GenARMLogitsProcessor, push_reward_model
from hf_genarm.configuration import RewardModelMetadata
from hf_genarm.hub import looks_like_hub_id, push_saved_reward_model
from hf_genarm.model_card import MODEL_CARD_TAGS, create_model_card, is_unedited_generated_card
from hf_genarm.testing import make_tiny_causal_lm, make_tiny_tokenizer
from hf_genarm.vocab import tokenizer_fingerprint

_API = re.compile(r"^/api/models/([^/]+)/([^/]+)(?:/(preupload|commit|branch|revision|tree)/(.+))?$")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_RESOLVE = re.compile(r"^/([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")


class LocalHub:
    """In-memory git-like store: repos with branches pointing at commits, each commit a full file map."""

    def __init__(self):
        self.repos = {}
        self.unhandled = []
        self.lock = threading.Lock()
        self.endpoint = ""

    def create(self, repo_id):
        initial = {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
        oid = self._oid(repo_id, initial, "initial")
        self.repos[repo_id] = {"commits": {oid: initial}, "branches": {"main": oid}}

    def files(self, repo_id, revision="main"):
        repo = self.repos[repo_id]
        return repo["commits"][repo["branches"].get(revision, revision)]

    @staticmethod
    def _oid(repo_id, files, salt):
        digest = hashlib.sha1(
            repr((repo_id, salt, sorted((k, hashlib.sha1(v).hexdigest()) for k, v in files.items()))).encode()
        )
        return digest.hexdigest()


def make_handler(hub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status, payload=None, headers=None, body=None):
            data = body if body is not None else json.dumps(payload if payload is not None else {}).encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if body is None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, status, code, message):
            self._reply(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

        def _body(self):
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self):
            url = urlsplit(self.path)
            with hub.lock:
                if url.path == "/api/repos/create":
                    request = json.loads(self._body())
                    repo_id = f"{request.get('organization') or 'local-user'}/{request['name']}"
                    payload = {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id}
                    if repo_id in hub.repos:
                        return self._reply(409, {"error": "You already created this model repo", **payload})
                    hub.create(repo_id)
                    return self._reply(200, payload)
                if url.path == "/api/validate-yaml":
                    content = json.loads(self._body())["content"]
                    match = re.match(r"^---\n(.*?)\n---\n", content, flags=re.DOTALL)
                    try:
                        yaml.safe_load(match.group(1) if match else "")
                    except yaml.YAMLError as error:
                        return self._reply(400, {"errors": [{"message": str(error)}]})
                    return self._reply(200, {"errors": [], "warnings": []})
                match = _API.match(url.path)
                if match is None:
                    hub.unhandled.append(("POST", self.path))
                    return self._error(404, "EndpointNotFound", f"POST {url.path} is not implemented")
                repo_id, action, revision = (
                    f"{match.group(1)}/{match.group(2)}",
                    match.group(3),
                    unquote(match.group(4) or ""),
                )
                if repo_id not in hub.repos:
                    return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                repo = hub.repos[repo_id]
                if action == "preupload":
                    files = json.loads(self._body())["files"]
                    modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                    return self._reply(200, {"files": modes, "commitOid": repo["branches"]["main"]})
                if action == "branch":
                    if revision in repo["branches"]:
                        return self._error(409, "BranchExists", f"Branch {revision} already exists")
                    repo["branches"][revision] = repo["branches"]["main"]
                    return self._reply(200, {})
                if action == "commit":
                    if parse_qs(url.query).get("create_pr"):
                        return self._error(400, "NotSupported", "pull requests are not supported by the local hub")
                    if revision not in repo["branches"]:
                        return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                    files = dict(repo["commits"][repo["branches"][revision]])
                    for line in self._body().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                        elif item["key"] == "deletedFile":
                            files.pop(item["value"]["path"])
                        elif item["key"] == "deletedFolder":
                            prefix = item["value"]["path"].rstrip("/") + "/"
                            files = {path: data for path, data in files.items() if not path.startswith(prefix)}
                        elif item["key"] != "header":
                            return self._error(400, "BadRequest", f"unsupported commit operation {item['key']}")
                    oid = hub._oid(repo_id, files, len(repo["commits"]))
                    repo["commits"][oid] = files
                    repo["branches"][revision] = oid
                    return self._reply(200, {"commitUrl": f"{hub.endpoint}/{repo_id}/commit/{oid}", "commitOid": oid})
            hub.unhandled.append(("POST", self.path))
            return self._error(404, "EndpointNotFound", f"POST {url.path} is not implemented")

        def _tree(self, repo_id, rest, query):
            revision, _, folder = rest.partition("/")
            if repo_id not in hub.repos:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            repo = hub.repos[repo_id]
            oid = repo["branches"].get(unquote(revision), unquote(revision))
            if oid not in repo["commits"]:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            prefix = unquote(folder).strip("/") + "/" if folder else ""
            recursive = query.get("recursive", ["false"])[0] == "true"
            entries = {}
            for path, data in repo["commits"][oid].items():
                if not path.startswith(prefix):
                    continue
                parts = path[len(prefix) :].split("/")
                for depth in range(1, len(parts)):
                    if recursive or depth == 1:
                        directory = prefix + "/".join(parts[:depth])
                        entries[directory] = {"type": "directory", "path": directory, "oid": "0" * 40}
                if recursive or len(parts) == 1:
                    blob = hashlib.sha1(data).hexdigest()
                    entries[path] = {"type": "file", "path": path, "size": len(data), "oid": blob}
            if prefix and not entries:
                return self._error(404, "EntryNotFound", f"{prefix} does not exist on {revision}")
            return self._reply(200, sorted(entries.values(), key=lambda entry: entry["path"]))

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/api/agent-harnesses":
                # User-agent registry the client fetches once a day; a 404 keeps it from caching a fake one.
                return self._error(404, "EndpointNotFound", "not served by the local hub")
            with hub.lock:
                match = _RESOLVE.match(url.path)
                if match is not None:
                    repo_id, revision, filename = (
                        f"{match.group(1)}/{match.group(2)}",
                        unquote(match.group(3)),
                        unquote(match.group(4)),
                    )
                    if repo_id not in hub.repos:
                        return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                    repo = hub.repos[repo_id]
                    oid = repo["branches"].get(revision, revision)
                    if oid not in repo["commits"]:
                        return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                    files = repo["commits"][oid]
                    if filename not in files:
                        self.send_response(404)
                        self.send_header("X-Error-Code", "EntryNotFound")
                        self.send_header("X-Error-Message", "Entry not found")
                        self.send_header("X-Repo-Commit", oid)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return None
                    data = files[filename]
                    headers = {"X-Repo-Commit": oid, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
                    return self._reply(200, headers=headers, body=data)
                match = _API.match(url.path)
                if match is not None and match.group(3) == "tree":
                    return self._tree(f"{match.group(1)}/{match.group(2)}", match.group(4), parse_qs(url.query))
                if match is not None and match.group(3) in (None, "revision"):
                    repo_id = f"{match.group(1)}/{match.group(2)}"
                    if repo_id not in hub.repos:
                        return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                    revision = unquote(match.group(4) or "main")
                    oid = hub.repos[repo_id]["branches"].get(revision, revision)
                    files = hub.repos[repo_id]["commits"][oid]
                    siblings = [{"rfilename": name} for name in sorted(files)]
                    return self._reply(200, {"id": repo_id, "modelId": repo_id, "sha": oid, "siblings": siblings})
            hub.unhandled.append((self.command, self.path))
            return self._error(404, "EndpointNotFound", f"{self.command} {url.path} is not implemented")

    return Handler


@pytest.fixture()
def local_hub(monkeypatch):
    hub = LocalHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    # What HF_ENDPOINT / HF_HUB_OFFLINE=0 would set at import time, applied to the already imported client.
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", hub.endpoint)
    monkeypatch.setattr(transformers.utils.hub, "_hf_api", None)  # transformers' shared client, built lazily
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    # Anything that still aims at the real Hub fails at once instead of reaching (or waiting for) the network.
    real_getaddrinfo = socket.getaddrinfo

    def local_getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL_HOSTS:
            raise OSError(f"test blocked a lookup of {host!r}: only the local hub may be reached")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_getaddrinfo)
    monkeypatch.setenv("HF_TOKEN", "hf_local_stand_in_token")
    yield hub
    server.shutdown()
    server.server_close()
    assert not hub.unhandled, f"the client called endpoints the stand-in lacks: {hub.unhandled}"


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def tokenizer():
    return make_tiny_tokenizer()


def sample_batch(tokenizer):
    return tokenizer(
        ["Question: how do I bake bread? Answer: mix flour.", "Life is short; eat dessert."],
        return_tensors="pt",
        padding=True,
    )


def rewards(model, tokenizer):
    with torch.no_grad():
        return model.sequence_rewards(**sample_batch(tokenizer), prompt_length=6)


def test_push_then_pull_by_repo_id_and_revision(local_hub, tokenizer, tmp_path):
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=1), beta_r=0.2, tokenizer=tokenizer)
    reward_model.metadata.metrics = {"eval_preference_accuracy": 0.875}
    first = reward_model.push_to_hub("alice/tiny-arm", tokenizer=tokenizer, commit_message="First version")
    assert first.oid == local_hub.repos["alice/tiny-arm"]["branches"]["main"]
    pushed = local_hub.files("alice/tiny-arm")
    assert {"model.safetensors", "config.json", "genarm_config.json", "README.md", "tokenizer.json"} <= set(pushed)
    assert not [name for name in pushed if name.endswith((".bin", ".pt", ".pkl", ".py"))]
    sidecar = json.loads(pushed["genarm_config.json"])
    assert sidecar["beta_r"] == 0.2 and sidecar["tokenizer"] == tokenizer_fingerprint(tokenizer)

    cache = tmp_path / "cache"
    loaded = AutoregressiveRewardModel.from_pretrained("alice/tiny-arm", cache_dir=cache)
    assert loaded.beta_r == 0.2 and loaded.metadata.tokenizer == tokenizer_fingerprint(tokenizer)
    assert torch.allclose(rewards(loaded, tokenizer), rewards(reward_model, tokenizer), atol=1e-6)

    # Tools that know nothing of hf-genarm read the same repository.
    plain = AutoModelForCausalLM.from_pretrained("alice/tiny-arm", cache_dir=cache)
    assert type(plain).__name__ == "GPT2LMHeadModel" and "auto_map" not in json.loads(pushed["config.json"])
    batch = sample_batch(tokenizer)
    with torch.no_grad():
        assert torch.allclose(plain(**batch).logits, reward_model.model(**batch).logits, atol=1e-6)

    # The pulled fingerprint lets the decoding side refuse a base model whose tokenizer differs.
    GenARMLogitsProcessor(loaded, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="tokenizer"):
        GenARMLogitsProcessor(loaded, tokenizer=make_tiny_tokenizer(vocab_size=380))

    card = ModelCard(pushed["README.md"].decode())
    assert set(MODEL_CARD_TAGS) <= set(card.data.tags)
    assert 'AutoregressiveRewardModel.from_pretrained("alice/tiny-arm")' in card.text
    assert "| `eval_preference_accuracy` | 0.875 |" in card.text and "beta_r = 0.2" in card.text

    second_model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=2), beta_r=0.3, tokenizer=tokenizer)
    second = push_reward_model(second_model, "alice/tiny-arm", tokenizer=tokenizer)
    assert second.oid != first.oid
    latest = AutoregressiveRewardModel.from_pretrained("alice/tiny-arm", cache_dir=cache)
    pinned = AutoregressiveRewardModel.from_pretrained("alice/tiny-arm", revision=first.oid, cache_dir=cache)
    assert latest.beta_r == 0.3 and pinned.beta_r == 0.2
    assert torch.allclose(rewards(latest, tokenizer), rewards(second_model, tokenizer), atol=1e-6)
    assert torch.allclose(rewards(pinned, tokenizer), rewards(reward_model, tokenizer), atol=1e-6)


def test_push_to_a_branch_leaves_main_alone(local_hub, tokenizer, tmp_path):
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=3), beta_r=0.1)
    reward_model.push_to_hub("alice/branchy", tokenizer=tokenizer, revision="experiment")
    assert "model.safetensors" not in local_hub.files("alice/branchy", "main")
    assert "model.safetensors" in local_hub.files("alice/branchy", "experiment")
    loaded = AutoregressiveRewardModel.from_pretrained("alice/branchy", revision="experiment", cache_dir=tmp_path)
    assert torch.allclose(rewards(loaded, tokenizer), rewards(reward_model, tokenizer), atol=1e-6)


def test_push_into_an_existing_repo_deletes_nothing_and_keeps_the_users_card(local_hub, tokenizer, caplog):
    api = HfApi()
    api.create_repo("bob/existing")
    user_card = "---\nlicense: mit\n---\n# Bob's reward model\n\nWritten by hand.\n"
    api.upload_file(path_or_fileobj=b"keep me", path_in_repo="notes/keep.txt", repo_id="bob/existing")
    api.upload_file(path_or_fileobj=user_card.encode(), path_in_repo="README.md", repo_id="bob/existing")
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(), beta_r=0.1)

    with caplog.at_level(logging.WARNING):
        reward_model.push_to_hub("bob/existing", tokenizer=tokenizer)
    files = local_hub.files("bob/existing")
    assert files["notes/keep.txt"] == b"keep me"
    assert files["README.md"].decode() == user_card
    assert "model.safetensors" in files and "Kept the README.md of bob/existing" in caplog.text

    reward_model.push_to_hub("bob/existing", tokenizer=tokenizer, overwrite_model_card=True)
    files = local_hub.files("bob/existing")
    assert is_unedited_generated_card(files["README.md"].decode()) and files["notes/keep.txt"] == b"keep me"


def test_trainer_push_to_hub_shares_an_adapter_with_the_runs_metrics(local_hub, tokenizer, tmp_path):
    from peft import LoraConfig

    base_dir = tmp_path / "base"
    make_tiny_causal_lm(seed=4).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    pairs = [
        {"prompt": f"Mood: {mood}. Answer:", "chosen": f" {good}.", "rejected": f" {bad}."}
        for mood, good, bad in [("happy", "lovely", "awful"), ("sad", "awful", "lovely")] * 4
    ]
    args = ARMConfig(
        output_dir=str(tmp_path / "run"),
        hub_model_id="alice/lora-arm",
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trainer = ARMTrainer(
        str(base_dir),
        args=args,
        train_dataset=pairs,
        eval_dataset=pairs[:4],
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], task_type="CAUSAL_LM"),
    )
    trainer.train()
    metrics = trainer.evaluate()
    commit = trainer.push_to_hub(dataset="mood-pairs")
    assert commit.oid == local_hub.repos["alice/lora-arm"]["branches"]["main"]

    files = local_hub.files("alice/lora-arm")
    assert {"adapter_model.safetensors", "adapter_config.json", "genarm_config.json", "README.md"} <= set(files)
    assert not {"model.safetensors", "training_args.bin"} & set(files)
    assert not [name for name in files if name.startswith("checkpoint-")]
    sidecar = json.loads(files["genarm_config.json"])
    assert sidecar["metrics"]["eval_preference_accuracy"] == metrics["eval_preference_accuracy"]
    assert sidecar["metrics"]["eval_loss"] == pytest.approx(metrics["eval_loss"])
    assert sidecar["datasets"] == ["mood-pairs"] and sidecar["base_model"] == str(base_dir)
    card = files["README.md"].decode()
    assert f"| `eval_loss` | {metrics['eval_loss']:.4g} |" in card
    assert f"| `eval_rewards/margins` | {metrics['eval_rewards/margins']:.4g} |" in card
    assert "library_name: peft" in card and "LoRA/PEFT adapter" in card
    # The same card sits in the output folder.
    assert (tmp_path / "run" / "README.md").read_text(encoding="utf-8") == card

    loaded = AutoregressiveRewardModel.from_pretrained("alice/lora-arm", cache_dir=tmp_path / "cache")
    assert loaded.is_peft_model
    assert torch.allclose(rewards(loaded, tokenizer), rewards(trainer.reward_model.eval(), tokenizer), atol=1e-6)


def test_released_style_plain_causal_lm_repo_loads_with_the_callers_beta_r(local_hub, tokenizer, tmp_path):
    folder = tmp_path / "released"
    make_tiny_causal_lm(seed=6).save_pretrained(folder)
    api = HfApi()
    api.create_repo("genarm/released-arm")
    api.upload_folder(folder_path=str(folder), repo_id="genarm/released-arm")
    loaded = AutoregressiveRewardModel.from_pretrained("genarm/released-arm", beta_r=0.05, cache_dir=tmp_path / "cache")
    assert loaded.beta_r == 0.05 and loaded.metadata.tokenizer is None
    reference = AutoregressiveRewardModel(AutoModelForCausalLM.from_pretrained(folder), beta_r=0.05)
    assert torch.allclose(rewards(loaded, tokenizer), rewards(reference, tokenizer), atol=1e-6)


def test_push_without_network_access_raises_the_hubs_own_error(tokenizer):
    assert constants.HF_HUB_OFFLINE, "tests run with HF_HUB_OFFLINE=1"
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(), beta_r=0.1)
    with pytest.raises(OfflineModeIsEnabled):
        reward_model.push_to_hub("alice/offline", tokenizer=tokenizer)
    with pytest.raises(TypeError, match="AutoregressiveRewardModel"):
        push_reward_model(make_tiny_causal_lm(), "alice/not-wrapped")


def test_card_usage_snippet_runs_as_written(tokenizer, tmp_path):
    base_dir = tmp_path / "base"
    make_tiny_causal_lm(seed=7).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    reward_dir = tmp_path / "reward"
    reward_model = AutoregressiveRewardModel(AutoModelForCausalLM.from_pretrained(base_dir), beta_r=0.1)
    reward_model.save_pretrained(reward_dir, tokenizer=tokenizer)
    card = (reward_dir / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(.*?)```", card, flags=re.DOTALL).group(1)
    assert f'base_id = "{base_dir}"' in snippet and f'from_pretrained("{reward_dir}")' in snippet
    namespace = {}
    exec(compile(snippet, "model-card-snippet", "exec"), namespace)
    assert namespace["output"].shape[1] > namespace["inputs"]["input_ids"].shape[1]


def test_card_lists_beta_r_base_model_data_and_citation():
    metadata = RewardModelMetadata(
        beta_r=0.05,
        base_model="org/base-model",
        datasets=["org/prefs", "local.jsonl", "pairs.jsonl.gz"],
        metrics={"eval_rewards/accuracies": 0.8125},
        tokenizer={"vocab_size": 400, "vocab_sha256": "ab" * 32, "special_tokens": {}},
    )
    card = create_model_card(metadata, model_name="my-arm", repo_id="org/my-arm")
    assert card.data.base_model == "org/base-model" and card.data.datasets == ["org/prefs"]
    text = card.text
    assert "`org/prefs`, `local.jsonl`, `pairs.jsonl.gz`" in text and "| `eval_rewards/accuracies` | 0.8125 |" in text
    assert "400 tokens" in text and "@inproceedings{xu2025genarm" in text
    assert is_unedited_generated_card(str(card))
    assert not is_unedited_generated_card(str(card).replace("my-arm", "your-arm"))


def test_every_place_that_tells_a_hub_id_from_a_path_follows_one_rule(tmp_path, monkeypatch, capsys):
    """`models/arm` beside a local `models` folder is a mistyped path everywhere, never a Hub id."""
    from hf_genarm.cli import main
    from hf_genarm.integrations._vllm_settings import additional_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "notes.txt").write_text("not a model")
    assert looks_like_hub_id("org/arm") and looks_like_hub_id("arm")
    assert not looks_like_hub_id("models/arm") and not looks_like_hub_id("notes.txt")
    assert not looks_like_hub_id("arm", namespaced=True) and not looks_like_hub_id("./arm")
    # Loading: refused at once with the path named, instead of a Hub lookup.
    with pytest.raises(ValueError, match="'models/arm' is neither an existing folder nor a Hub repository id"):
        AutoregressiveRewardModel.from_pretrained("models/arm")
    # Model cards: a base model or data set given by a local-looking name is not linked as a Hub repository.
    metadata = RewardModelMetadata(beta_r=0.1, base_model="models/base", datasets=["models/prefs", "org/prefs"])
    card = create_model_card(metadata, model_name="arm")
    assert card.data.base_model is None and card.data.datasets == ["org/prefs"]
    # The command line and the vLLM settings.
    assert main(["score", "--reward-model", "models/arm", "--prompt", "Q:", "--response", " A"]) == 2
    assert "--reward-model: no such folder: models/arm" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'models' is a local folder, so it is not read as a Hub id"):
        additional_config({"helpful": "models/arm"})


def test_push_refuses_a_tokenizer_other_than_the_one_the_model_records(local_hub, tokenizer):
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(), beta_r=0.1, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="`tokenizer` differs from the tokenizer this reward model records"):
        push_reward_model(reward_model, "alice/lying", tokenizer=make_tiny_tokenizer(vocab_size=380))
    assert "alice/lying" not in local_hub.repos
    assert reward_model.metadata.tokenizer == tokenizer_fingerprint(tokenizer)


def test_push_saved_folder_uploads_it_without_loading_and_leaves_it_untouched(local_hub, tokenizer, tmp_path):
    folder = tmp_path / "arm"
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(seed=5), beta_r=0.2, tokenizer=tokenizer)
    reward_model.save_pretrained(folder, tokenizer=tokenizer)
    (folder / "training_args.bin").write_bytes(b"trainer state, a pickle")
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "model.safetensors").write_bytes(b"intermediate")
    local_card = (folder / "README.md").read_text(encoding="utf-8")

    commit = push_saved_reward_model(folder, "alice/saved-arm", commit_message="From a folder")
    files = local_hub.files("alice/saved-arm")
    assert commit.oid == local_hub.repos["alice/saved-arm"]["branches"]["main"]
    assert {"model.safetensors", "config.json", "genarm_config.json", "README.md", "tokenizer.json"} <= set(files)
    assert "training_args.bin" not in files and not [name for name in files if name.startswith("checkpoint-")]
    assert 'AutoregressiveRewardModel.from_pretrained("alice/saved-arm")' in files["README.md"].decode()
    assert (folder / "README.md").read_text(encoding="utf-8") == local_card, "the saved folder is not modified"
    loaded = AutoregressiveRewardModel.from_pretrained("alice/saved-arm", cache_dir=tmp_path / "cache")
    assert loaded.beta_r == 0.2 and torch.allclose(rewards(loaded, tokenizer), rewards(reward_model, tokenizer))

    # Once pulled, the repository loads offline from the cache; a repository never pulled names HF_HUB_OFFLINE.
    with pytest.MonkeyPatch.context() as offline:
        offline.setattr(constants, "HF_HUB_OFFLINE", True)
        cached = AutoregressiveRewardModel.from_pretrained("alice/saved-arm", cache_dir=tmp_path / "cache")
        assert torch.allclose(rewards(cached, tokenizer), rewards(reward_model, tokenizer))
        with pytest.raises(OSError, match="'alice/other-arm' from the Hub: HF_HUB_OFFLINE is set"):
            AutoregressiveRewardModel.from_pretrained("alice/other-arm", cache_dir=tmp_path / "cache")


def test_push_saved_folder_is_checked_before_any_network_call(tokenizer, tmp_path):
    from peft import LoraConfig, get_peft_model

    assert constants.HF_HUB_OFFLINE, "a network call would raise OfflineModeIsEnabled instead"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"has no genarm_config\.json"):
        push_saved_reward_model(empty, "alice/arm")

    two = tmp_path / "two"
    AutoregressiveRewardModel(make_tiny_causal_lm()).save_pretrained(two)
    get_peft_model(make_tiny_causal_lm(), LoraConfig(r=2, target_modules=["c_attn"])).save_pretrained(two)
    with pytest.raises(ValueError, match="holds two models"):
        push_saved_reward_model(two, "alice/arm")

    pickled = tmp_path / "pickled"
    AutoregressiveRewardModel(make_tiny_causal_lm()).save_pretrained(pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match=r"not safetensors.*pytorch_model\.bin"):
        push_saved_reward_model(pickled, "alice/arm")

    damaged = tmp_path / "damaged"
    AutoregressiveRewardModel(make_tiny_causal_lm()).save_pretrained(damaged)
    (damaged / "genarm_config.json").write_text("null")
    with pytest.raises(ValueError, match=r"genarm_config\.json is not valid GenARM metadata"):
        push_saved_reward_model(damaged, "alice/arm")
    with pytest.raises(ValueError, match="`repo_id` must be a Hub repository id"):
        push_saved_reward_model(pickled, "not a repo id")


def test_a_push_replaces_the_model_of_an_earlier_push_and_loading_refuses_a_repo_with_two(
    local_hub, tokenizer, tmp_path
):
    from peft import LoraConfig, get_peft_model

    base_dir = tmp_path / "base"
    make_tiny_causal_lm(seed=3).save_pretrained(base_dir)
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=2, target_modules=["c_attn"], init_lora_weights=False),
    )
    adapter = AutoregressiveRewardModel(peft_model, beta_r=0.1).eval()
    full = AutoregressiveRewardModel(make_tiny_causal_lm(seed=8), beta_r=0.3)
    first = adapter.push_to_hub("alice/switch")
    HfApi().upload_file(path_or_fileobj=b"keep me", path_in_repo="notes.txt", repo_id="alice/switch")
    full.push_to_hub("alice/switch")
    files = local_hub.files("alice/switch")
    assert not {"adapter_config.json", "adapter_model.safetensors"} & set(files)
    assert files["notes.txt"] == b"keep me" and "adapter_model.safetensors" in local_hub.files(
        "alice/switch", first.oid
    )
    latest = AutoregressiveRewardModel.from_pretrained("alice/switch", cache_dir=tmp_path / "cache")
    assert not latest.is_peft_model and torch.allclose(rewards(latest, tokenizer), rewards(full, tokenizer))

    # A repository written by other means that holds both is refused, not guessed at.
    HfApi().upload_file(
        path_or_fileobj=local_hub.files("alice/switch", first.oid)["adapter_config.json"],
        path_in_repo="adapter_config.json",
        repo_id="alice/switch",
    )
    with pytest.raises(ValueError, match="holds two models"):
        AutoregressiveRewardModel.from_pretrained("alice/switch", cache_dir=tmp_path / "cache2")


def test_a_saved_folder_whose_tokenizer_files_contradict_its_metadata_is_not_pushed_or_scored(
    tokenizer, tmp_path, capsys
):
    from hf_genarm.cli import main

    folder = tmp_path / "arm"
    AutoregressiveRewardModel(make_tiny_causal_lm(), tokenizer=tokenizer).save_pretrained(folder, tokenizer=tokenizer)
    score = ["score", "--reward-model", str(folder), "--prompt", "Life is", "--response", " good", "--json"]
    assert main(score) == 0
    capsys.readouterr()
    make_tiny_tokenizer(vocab_size=380).save_pretrained(folder)  # another tokenizer written over the saved one
    mismatch = r"tokenizer saved in .*arm differs from the tokenizer .*genarm_config\.json records"
    with pytest.raises(ValueError, match=mismatch):
        push_saved_reward_model(folder, "alice/arm")
    assert main(score) == 1
    assert re.search(mismatch, capsys.readouterr().err)
    tokenizer.save_pretrained(folder)  # the fix the error names
    assert main(score) == 0
