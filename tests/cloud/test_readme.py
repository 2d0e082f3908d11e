"""The README's references are the code's own declarations: they cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from cloud.dns01.providers.docs import splice

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_provider_table_matches_the_code():
    text = README.read_text()
    assert splice(text) == text, "regenerate it: python -m cloud.dns01.providers.docs README.md"


def test_the_readme_agent_configuration_sample_is_the_documented_one():
    import nas_agent.config

    doc = nas_agent.config.__doc__
    sample = doc[doc.index("    [agent]") :].rstrip()
    unindented = "\n".join(line.removeprefix("    ") for line in sample.splitlines())
    assert f"```ini\n{unindented}\n```" in README.read_text()


def _module_map() -> str:
    text = README.read_text()
    return text[text.index("<!-- module-map:begin") : text.index("<!-- module-map:end")]


def test_every_path_in_the_readme_module_map_exists():
    table = _module_map()
    root = README.parent
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    missing = []
    for row in rows:
        where, job = row.split("|")[1:3]
        folders = [w.strip().strip("`") for w in where.strip().split(", ")]
        for folder in folders:
            if not (root / folder.strip()).exists():
                missing.append(folder)
        # Names in the job column are inside the row's folder (when the row is one folder).
        base = root / folders[0] if folders[0].endswith("/") else None
        for name in re.findall(r"`([\w/]+(?:\.py|/))`", job):
            if base is not None and not (base / name).exists():
                missing.append(f"{folders[0]}{name}")
    assert not missing


def test_every_package_is_in_the_readme_module_map():
    table = _module_map()
    root = README.parent
    packages = {
        str(init.parent.relative_to(root)) + "/"
        for top in ("cloud", "nas_agent", "lab")
        for init in (root / top).rglob("__init__.py")
    }
    assert {p for p in packages if f"`{p}`" not in table and f"`{Path(p).name}/`" not in table} == {
        "cloud/",
        "nas_agent/",
    }


def test_the_readme_alerts_table_lists_every_alert_kind():
    from cloud.fleet.alerts import KINDS

    text = README.read_text()
    section = text[text.index("## Alerts") :]
    table = section[: section.index("```toml")]
    listed = re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)
    assert listed == list(dict.fromkeys(listed)), "a kind is listed twice"
    assert set(listed) == set(KINDS)
