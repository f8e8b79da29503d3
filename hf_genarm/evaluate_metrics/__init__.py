"""`evaluate` metric modules shipped with hf-genarm, loadable offline with `evaluate.load(<folder path>)`."""
