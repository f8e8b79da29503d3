"""The transformers internals hf_genarm still relies on, in one place, with the versions they were checked against.

Everything else the package calls is public API. Where transformers offers no public way to do what an entry below
needs, the dependency is kept small and named here; a release that changes one is caught by the tests named with it
(run them at the declared floor and at the latest release).

- `_growing_cache.GrowingCacheLayer` subclasses `DynamicLayer` and overrides its layer methods (`lazy_initialization`,
  `update`, `get_seq_length`, `crop`, `reset`, `reorder_cache`, `batch_select_indices`, `batch_repeat_interleave`),
  keeping the `keys`, `values`, `is_initialized` and `device` attributes transformers reads off a layer.
  Why not public: a layer class is the extension transformers designs for (`CacheLayerMixin`), but the attributes it
  reads off a layer are not a declared interface. Checked: transformers 5.19.0 and 5.24.
  Tests: `tests/test_growing_cache.py`.
- `_growing_cache.growing_dynamic_cache` builds `DynamicCache(config=...)` and replaces the plain full-attention
  entries of its `layers` list. Why not public: `DynamicCache` takes no layer class, and `Cache(layers=...)` would
  lose the per-layer dispatch (sliding window, linear attention) that only `DynamicCache.__init__` performs.
  Checked: transformers 5.19.0 and 5.24. Tests: `tests/test_growing_cache.py`, `tests/test_architectures.py` (5.24).
- `_reward_stream.RewardModelStream` reads `LinearAttentionCacheLayerMixin.is_conv_states_initialized` /
  `is_recurrent_states_initialized` and `CacheLayerMixin.is_initialized` after a forward, to notice a model that keeps
  its state on its own modules (RecurrentGemma). Why not public: there is no "is this layer filled" query.
  Checked: transformers 5.24. On 5.19.0 `tests/test_architectures.py` fails for RecurrentGemma under beam search and
  for Mamba / FalconMamba greedy decoding (it did before this table was written too; not yet investigated).
  Tests: `tests/test_architectures.py`.

No module reads state off the call stack (`inspect.currentframe`, `sys._getframe`, `f_locals`): what a processor
needs from `generate()` is passed to its constructor (`max_new_tokens=`) or read from the ids and scores it is
called with.
"""
