"""The README's references are the code's own declarations: they cannot drift apart."""

from __future__ import annotations

from pathlib import Path

from cloud.dns.docs import splice

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_provider_table_matches_the_code():
    text = README.read_text()
    assert splice(text) == text, "regenerate it: python -m cloud.dns.docs README.md"


def test_the_readme_agent_configuration_sample_is_the_documented_one():
    import nas_agent.config

    doc = nas_agent.config.__doc__
    sample = doc[doc.index("    [agent]") :].rstrip()
    unindented = "\n".join(line.removeprefix("    ") for line in sample.splitlines())
    assert f"```ini\n{unindented}\n```" in README.read_text()
