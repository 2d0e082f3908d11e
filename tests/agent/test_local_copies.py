"""The agent's own copy of what it installed, the backup a failed install restores."""

from __future__ import annotations

from nas_agent.local_copies import LocalCopies, Material
from tests.agent.dsm_fixtures import issue


def _material(issued) -> Material:
    return Material(
        issued.key_pem.encode("ascii"),
        issued.leaf_pem.encode("ascii"),
        issued.chain_pem.encode("ascii"),
    )


def test_a_copy_reads_back_as_saved(tmp_path) -> None:
    copies = LocalCopies(str(tmp_path))
    saved = _material(issue("ec"))
    copies.save("example.test", saved)
    assert copies.load("example.test") == saved


def test_a_copy_whose_key_is_not_its_certificates_is_no_backup(tmp_path) -> None:
    # Its three files are written one by one: a run killed between two leaves the new key with
    # the old certificate, which DSM would refuse to take back when a later install fails.
    copies = LocalCopies(str(tmp_path))
    old, new = _material(issue("ec")), _material(issue("ec"))
    copies.save("example.test", old)
    (tmp_path / "example.test" / "privkey.pem").write_bytes(new.key_pem)
    assert copies.load("example.test") is None
