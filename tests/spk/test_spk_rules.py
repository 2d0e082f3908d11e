"""The .spk that tools/build_spk.py builds, checked against DSM 7's package rules, each test citing
the section of Synology's "DSM 7 Developer Guide" (help.synology.com/developer-guide) it checks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.spk.conftest import ARCHES, REPO
from tests.spk.spk_file import Spk

# "Appendix A: Platform and Arch Value Mapping Table": the arch families and their platforms.
DSM_ARCH_FAMILIES = {
    "noarch": (),
    "x86_64": (
        "apollolake",
        "avoton",
        "braswell",
        "broadwell",
        "broadwellnk",
        "broadwellntb",
        "broadwellntbap",
        "bromolow",
        "cedarview",
        "coffeelake",
        "denverton",
        "geminilake",
        "grantley",
        "kvmx64",
        "purley",
        "skylaked",
        "v1000",
    ),
    "i686": ("evansport",),
    "armv7": ("alpine", "alpine4k"),
    "armv5": ("628x",),
    "armv8": ("rtd1296", "armada37xx", "rtd1619", "rtd1619b"),
}
DSM_ARCH_OF = {"x86_64": "x86_64", "aarch64": "armv8"}  # the machine's name -> DSM's
SCRIPTS = (
    "preinst",
    "postinst",
    "preuninst",
    "postuninst",
    "preupgrade",
    "postupgrade",
    "start-stop-status",
)
WIZARD_TYPES = {"textfield", "password", "singleselect", "multiselect", "combobox"}


@pytest.fixture(params=ARCHES)
def arch(request) -> str:
    return request.param


@pytest.fixture
def spk(first_build: dict[str, Spk], arch: str) -> Spk:
    return first_build[arch]


def _wizard_keys(steps: list) -> dict[str, tuple[str, dict]]:
    """key -> (item type, subitem) over every step of a wizard file."""
    keys = {}
    for step in steps:
        assert step["step_title"] and step["items"]
        for item in step["items"]:
            assert item["type"] in WIZARD_TYPES
            for sub in item["subitems"]:
                keys[sub["key"]] = (item["type"], sub)
    return keys


def test_the_spk_is_a_plain_tar_of_exactly_the_files_dsm_reads(spk):
    # "Package Introduction": the layout of an .spk (names are case sensitive); LICENSE, optional,
    # is left out. An .spk is an uncompressed tar (Spk opens it with "r:").
    files = {name for name, member in spk.members().items() if member.isfile()}

    assert files == {
        "INFO",
        "package.tgz",
        *(f"scripts/{name}" for name in SCRIPTS),
        "scripts/common",  # sourced by the others
        "conf/privilege",
        "WIZARD_UIFILES/install_uifile",
        "WIZARD_UIFILES/uninstall_uifile",
        "PACKAGE_ICON.PNG",
        "PACKAGE_ICON_256.PNG",
    }


def test_info_has_the_fields_dsm_7_requires_with_values_it_accepts(spk):
    # "Breaking Changes in 7.0" (2): package, version, os_min_ver, description, arch and
    # maintainer are necessary; os_min_ver at least 7.0-40000.
    info = spk.info()

    assert {"package", "version", "os_min_ver", "description", "arch", "maintainer"} <= set(info)
    assert all(info[k] for k in ("description", "maintainer", "displayname"))
    # "INFO" > "Necessary Fields" > package: none of : / > < | =
    assert info["package"] == "certdrop-agent"
    assert not set(":/><|=") & set(info["package"])
    # > version: [feature number]-[build number], numbers only between . - _, each below 2^31
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)*-[0-9]+", info["version"])
    assert all(int(n) < 2**31 for n in re.split(r"[.\-_]", info["version"]))
    # > os_min_ver: X.Y-Z, at least 7.0-40000 after DSM 7.0
    major, minor, build = map(int, re.fullmatch(r"(\d+)\.(\d+)-(\d+)", info["os_min_ver"]).groups())
    assert (major, minor, build) >= (7, 0, 40000)


def test_info_names_the_architecture_with_dsms_own_value(spk, arch):
    # "Appendix A: Platform and Arch Value Mapping Table": x86_64 is DSM's name for its 64-bit
    # Intel/AMD platforms, armv8 for its 64-bit ARM ones; `aarch64` is not a DSM value.
    valid = set(DSM_ARCH_FAMILIES) | {p for ps in DSM_ARCH_FAMILIES.values() for p in ps}
    values = spk.info()["arch"].split()

    assert values == [DSM_ARCH_OF[arch]]
    assert set(values) <= valid
    assert "aarch64" not in values


def test_info_checksum_is_the_md5_of_package_tgz(spk):
    # The MD5 SynoCommunity's spksrc writes into INFO's `checksum` for Package Center.
    assert spk.info()["checksum"] == hashlib.md5(spk.read("package.tgz")).hexdigest()


def test_the_package_runs_as_its_own_user_never_root(spk):
    # "Breaking Changes in 7.0" (1, 4) and "privilege": conf/privilege must say run-as package;
    # run-as system is gone and root needs Synology's signature.
    privilege = spk.json("conf/privilege")

    assert privilege["defaults"]["run-as"] == "package"
    assert "root" not in spk.read("conf/privilege").decode()
    assert privilege.get("username", "certdrop-agent") == spk.info()["package"]


@pytest.mark.skipif(shutil.which("dash") is None, reason="dash (a strict POSIX sh) is not here")
def test_every_lifecycle_script_is_there_executable_and_plain_posix_sh(spk, tmp_path):
    # "scripts": the seven scripts DSM runs; a script it cannot execute fails the install.
    members = spk.members()
    spk.unpack(tmp_path)
    service = tmp_path / "package" / "certdrop-agent-service"
    runnable = [tmp_path / "scripts" / name for name in SCRIPTS] + [service]

    for script in runnable:
        name = script.relative_to(tmp_path).as_posix()
        mode = members[name].mode if name in members else script.stat().st_mode & 0o777
        assert mode == 0o755, name
        assert script.read_text().startswith("#!/bin/sh\n"), name
    for script in [*runnable, tmp_path / "scripts" / "common"]:
        checked = subprocess.run(["dash", "-n", str(script)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
    assert not re.search(r"\b(sudo|su|synouser|synogroup)\b", _all_scripts(tmp_path))


def _all_scripts(unpacked: Path) -> str:
    paths = [*(unpacked / "scripts").iterdir(), unpacked / "package" / "certdrop-agent-service"]
    return "\n".join(p.read_text() for p in sorted(paths))


def test_the_wizards_ask_for_exactly_what_the_scripts_read(spk, tmp_path):
    # "WIZARD_UIFILES": JSON steps of UI components; each component's key reaches the scripts
    # as an environment variable (install_uifile: preinst and postinst; uninstall_uifile:
    # preuninst and postuninst).
    install = _wizard_keys(spk.json("WIZARD_UIFILES/install_uifile"))
    uninstall = _wizard_keys(spk.json("WIZARD_UIFILES/uninstall_uifile"))
    spk.unpack(tmp_path)
    read = set(re.findall(r"\bwizard_[a-z_]+", _all_scripts(tmp_path)))

    assert set(install) == {
        "wizard_invite_line",
        "wizard_dsm_user",
        "wizard_dsm_password",
        "wizard_otp",
        "wizard_dsm_url",
    }
    assert install["wizard_dsm_password"][0] == "password"  # typed hidden
    assert install["wizard_dsm_url"][1]["defaultValue"] == "https://127.0.0.1:5001"
    assert uninstall["wizard_keep_data"][0] == "multiselect"  # a checkbox
    assert uninstall["wizard_keep_data"][1]["defaultValue"] is True  # keeping is the default
    assert read == set(install) | set(uninstall)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_the_icons_are_pngs_of_the_sizes_dsm_7_shows(spk):
    # "Breaking Changes in 7.0" (6): PACKAGE_ICON.PNG is 64x64 from 7.0 on; "Package
    # Introduction": PACKAGE_ICON_256.PNG is 256x256.
    assert _png_size(spk.read("PACKAGE_ICON.PNG")) == (64, 64)
    assert _png_size(spk.read("PACKAGE_ICON_256.PNG")) == (256, 256)


def _checks():
    """tools/agent_bundle_checks.py (tools/ is no package), as the bundle's tests load it."""
    name = "agent_bundle_checks"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_native_libraries_are_for_the_units_architecture_and_dsm_7_0s_glibc(spk, arch, tmp_path):
    # "Appendix A": an x86_64 package must run on every x86_64 platform, an armv8 one on every
    # 64-bit ARM platform; DSM 7.0 and 7.1 have glibc 2.26 (tools/agent_bundle_checks.py).
    spk.unpack(tmp_path)
    checks = _checks()
    lib = tmp_path / "package" / "lib"

    report = checks.check_native(lib, arch, "3.8.18", max_glibc=(2, 26))
    machines = {checks.elf_machine(p) for p in lib.rglob("*") if p.is_file()} - {None}

    assert report.files >= 2  # cryptography's Rust module and cffi's backend at least
    assert machines == {arch}


def test_the_package_holds_the_agent_and_its_service_but_not_the_issuer_or_the_emulator(spk):
    payload = spk.payload()
    parts = {part for name in payload for part in name.split("/")}

    assert {"certdrop-agent", "certdrop-agent-service", "lib/nas_agent/cli.py"} <= set(payload)
    assert payload["certdrop-agent"].mode == payload["certdrop-agent-service"].mode == 0o755
    assert not {"lib/cloud", "lib/lab", "lib/bin"} & set(payload)
    assert not {"dsm_emulator", "lab", "flask", "werkzeug", "tests", "__pycache__"} & parts


def test_the_package_stays_small(spk):
    # "Package Introduction": LICENSE, when shipped, under 1 MB. The whole package: a budget, so
    # that a dependency that balloons it is noticed (about 6 MiB today, most of it cryptography).
    assert "LICENSE" not in spk.members()
    assert spk.path.stat().st_size < 16 * 2**20


def test_two_builds_wrap_the_same_payload_bytes_and_differ_only_in_version(
    first_build, second_build
):
    first, second = first_build["x86_64"], second_build["x86_64"]

    assert first.read("package.tgz") == second.read("package.tgz")
    assert first.info()["version"].endswith("-0001")
    assert second.info()["version"].endswith("-0002")
    assert {k: v for k, v in first.info().items() if k != "version"} == {
        k: v for k, v in second.info().items() if k != "version"
    }
