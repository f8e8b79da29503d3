"""Preference accuracy as an `evaluate` module; load it with `hf_genarm.load_preference_accuracy()`."""
