"""The README's provider reference is the providers' own declarations, rendered."""

from __future__ import annotations

from pathlib import Path

from cloud.dns.docs import splice

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_provider_table_matches_the_code():
    text = README.read_text()
    assert splice(text) == text, "regenerate it: python -m cloud.dns.docs README.md"
