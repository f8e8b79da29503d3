"""Adapters that run GenARM guidance inside other inference engines.

Each engine lives in its own module and is imported only by name (`hf_genarm.integrations.vllm`), so an engine
that is not installed never breaks `import hf_genarm`.
"""
