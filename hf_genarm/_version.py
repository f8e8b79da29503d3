"""The installed hf-genarm version; pyproject.toml is its one source. Imports nothing from the package."""

from importlib.metadata import version

__version__ = version("hf-genarm")
