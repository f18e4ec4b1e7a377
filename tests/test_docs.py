"""Docs name real things: every file path and config key that docs/*.md mention in backticks exists.

A renamed module or key fails here instead of leaving the docs describing code that is gone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.config import Settings

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
_PATH = re.compile(r"`((?:gateway|bench|tests|fuzz|devserver|examples|deploy|protos)/[\w./-]+)`")
_LINK = re.compile(r"\]\((\.\./[\w./-]+)\)")
_KEY = re.compile(r"`((?:server|metrics|auth|timeouts|cors|models|signature_cache)\.[a-z_]+)`")


def _setting_exists(dotted: str) -> bool:
    section, key = dotted.split(".")
    return key in Settings.from_mapping({}).to_mapping()[section]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_paths_and_links_exist(doc: Path) -> None:
    text = doc.read_text()
    paths = _PATH.findall(text) + [str((doc.parent / link).resolve().relative_to(REPO)) for link in _LINK.findall(text)]
    missing = [p for p in paths if not (REPO / p).exists()]
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_config_keys_exist(doc: Path) -> None:
    keys = [k for k in _KEY.findall(doc.read_text()) if not k.endswith(".py")]  # `metrics.py` is a module
    missing = [k for k in keys if not _setting_exists(k)]
    assert not missing, f"{doc.name} names config keys that do not exist: {missing}"


def test_the_checks_see_the_bounds_doc() -> None:
    text = (REPO / "docs" / "input-bounds.md").read_text()
    assert "gateway/codec/fastjson.py" in _PATH.findall(text)
    assert "server.max_json_depth" in _KEY.findall(text)


_SPEC = REPO / "docs" / "spec" / "tfserving-rest.md"
_SECTION_REF = re.compile(r"\bspec §(\d+(?:\.\d+)?)")


def _spec_sections() -> set[str]:
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", _SPEC.read_text(), re.M))


def test_every_spec_reference_in_the_code_names_a_section_of_the_spec() -> None:
    sections = _spec_sections()
    assert {"4.1", "7.2", "9"} <= sections, "the spec's headings were not found"
    refs = {
        (str(path.relative_to(REPO)), ref)
        for path in (REPO / "gateway").rglob("*.py")
        if "_pb" not in path.parts
        for ref in _SECTION_REF.findall(path.read_text())
    }
    assert len(refs) >= 10, "the references were not found: has their form changed?"
    assert sorted((where, ref) for where, ref in refs if ref not in sections) == []
