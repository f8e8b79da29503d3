"""Griffe extension for the API reference: Hugging Face style docstrings, shown cleanly by mkdocstrings.

The package's docstrings follow transformers' convention, `name (`type`, *optional*, defaults to `x`):`,
which reads well in source and in `help()`. Griffe's Google parser would put all of that, backticks included,
in the reference's type column. This extension, loaded by mkdocs.yml, rewrites each such entry to
`name (type):` (the default is shown in its own column, from the signature), strips backticks from the types of
Returns/Yields entries, and shows defaults that name a constant (`beta_r=DEFAULT_BETA_R`) by their value.
The docstrings themselves are not changed.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import griffe

_ARGUMENT_SECTIONS = {"args", "arguments", "parameters", "params", "attributes", "other parameters"}
_TYPED_SECTIONS = {"returns", "return", "yields", "yield"}
_OTHER_SECTIONS = {"raises", "examples", "example", "note", "notes", "warning", "warnings", "see also", "methods"}
_SECTION = re.compile(r"^(?P<indent>\s*)(?P<name>[A-Za-z][A-Za-z ]*):\s*$")
_ARGUMENT = re.compile(r"^(?P<head>\s+[*\w]+ )\((?P<type>.+)\):(?P<rest>.*)$")
_TYPED = re.compile(r"^(?P<indent>\s+)(?P<type>`[^:]*`[^:]*):(?P<rest>.*)$")
_CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*$")


def clean_type(text: str) -> str:
    """`` `float`, *optional*, defaults to `0.1` `` -> ``float``; `` `str` or `None` `` -> ``str or None``."""
    parts = [part.strip() for part in text.split(",")]
    kept = [part for part in parts if part != "*optional*" and not part.startswith("defaults to")]
    return ", ".join(kept).replace("`", "").strip() or text


def clean_docstring(value: str) -> str:
    lines, section, section_indent = [], None, -1
    for line in value.splitlines():
        header = _SECTION.match(line)
        if header and header["name"].strip().lower() in _ARGUMENT_SECTIONS | _TYPED_SECTIONS | _OTHER_SECTIONS:
            section, section_indent = header["name"].strip().lower(), len(header["indent"])
            lines.append(line)
            continue
        if line.strip() and len(line) - len(line.lstrip()) <= section_indent:
            section = None
        if section in _ARGUMENT_SECTIONS and (match := _ARGUMENT.match(line)):
            line = f"{match['head']}({clean_type(match['type'])}):{match['rest']}"
        elif section in _TYPED_SECTIONS and (match := _TYPED.match(line)):
            line = f"{match['indent']}{match['type'].replace('`', '')}:{match['rest']}"
        lines.append(line)
    return "\n".join(lines)


def _runtime_value(module_path: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module_path), name)
    except (ImportError, AttributeError):
        return None


class HFDocstrings(griffe.Extension):
    """Clean HF-style types in docstrings; show constant defaults by value."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = clean_docstring(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for function in _functions(pkg):
            module = function.module.path
            for parameter in function.parameters:
                default = str(parameter.default) if parameter.default is not None else ""
                if _CONSTANT.match(default):
                    value = _runtime_value(module, default)
                    if isinstance(value, (int, float, str, bool)):
                        parameter.default = repr(value)


def _functions(obj: griffe.Object, seen: set[str] | None = None):
    seen = set() if seen is None else seen
    if obj.path in seen:
        return
    seen.add(obj.path)
    for member in obj.members.values():
        if member.is_alias:
            continue
        if member.is_function:
            yield member
        elif member.is_class or member.is_module:
            yield from _functions(member, seen)
