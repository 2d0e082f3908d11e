"""`certdrop` imports only what a command needs (issue 16): the parser none of the commands,
reading a configuration only the DNS providers it names and none of the agent's bundle code.

Each check runs in a fresh interpreter, so what it finds in sys.modules is what that step
imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_PROVIDER_MODULES = ("rfc2136", "powerdns", "route53", "cloudflare", "lexicon", "exec")


def _modules_after(script: str, cwd: Path) -> set[str]:
    """The modules loaded once `script` ran (it may end by SystemExit, as --help does)."""
    report = "sys.__stderr__.write('MODULES' + json.dumps(sorted(sys.modules)))"
    code = f"import atexit, json, sys\natexit.register(lambda: {report})\n"
    code += textwrap.dedent(script)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert "MODULES" in done.stderr, done.stderr
    return set(json.loads(done.stderr.rsplit("MODULES", 1)[1]))


def test_help_imports_no_command_and_nothing_an_issuance_needs(tmp_path: Path) -> None:
    loaded = _modules_after("from cloud.cli.main import main\nmain(['--help'])", tmp_path)

    assert not {m for m in loaded if m.startswith("cloud.cli.") and m.endswith("_commands")}
    assert not {"cloud.config", "acme", "josepy", "requests", "dns", "cryptography"} & loaded


def test_a_configuration_loads_only_the_providers_it_names_and_no_bundle_code(
    tmp_path: Path,
) -> None:
    (tmp_path / "tsig").write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQ=")
    (tmp_path / "certdrop.toml").write_text(
        textwrap.dedent(
            """
            [ca]
            directory = "https://acme.example.test/directory"
            terms_agreed = true

            [storage]
            url = "store"
            keys_dir = "keys"

            [providers.dns]
            type = "rfc2136"
            server = "127.0.0.1:53"
            tsig_name = "key"
            tsig_secret = "file:tsig"

            [sites.example]
            domain = "example.test"
            provider = "dns"
            """
        )
    )
    script = """
        from pathlib import Path
        from cloud.config import load
        assert "example" in load(Path("certdrop.toml")).sites
    """

    loaded = _modules_after(script, tmp_path)

    providers = {m.rsplit(".", 1)[1] for m in loaded if m.startswith("cloud.dns01.providers.")}
    assert providers & set(_PROVIDER_MODULES) == {"rfc2136"}
    assert not {m for m in loaded if m.startswith("nas_agent.bundle.")}
    assert not {"acme.crypto_util", "OpenSSL", "boto3", "lexicon", "requests"} & loaded
