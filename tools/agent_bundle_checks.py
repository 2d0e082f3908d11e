"""Checks that an agent bundle's lib/ will run on the NAS it is built for (stdlib only).

    check_native(lib, "aarch64", "3.8.18", max_glibc=(2, 26)) -> NativeReport(files, glibc)
    machine_markers(lib) -> ["cffi-1.17.1.dist-info: Requires-Dist: ...", ...]

`check_native` looks at every ELF file, whatever its name: its e_machine must be the
architecture (62 x86_64, 183 aarch64), a CPython extension's file name must carry the target
version and architecture, and no GLIBC_x.y symbol version it names may be newer than the NAS's
glibc (DSM 7.0 and 7.1 have 2.26). It raises NativeCodeError listing every offending file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_ELF_MACHINES = {3: "i386", 40: "arm", 62: "x86_64", 183: "aarch64"}
_GLIBC = re.compile(rb"GLIBC_(2\.[0-9]+(?:\.[0-9]+)*)")
_CPYTHON_TAG = re.compile(r"\.cpython-(\d+)-([a-z0-9_]+)-linux-gnu\.so$")


class NativeCodeError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("native code that will not run on the NAS:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class NativeReport:
    files: int  # ELF files found
    glibc: tuple[int, ...]  # the newest GLIBC_x.y any of them names; () when none does

    @property
    def glibc_text(self) -> str:
        return dotted(self.glibc) if self.glibc else "none"


def elf_machine(path: Path) -> str | None:
    """The architecture an ELF file is for (by e_machine), or None when it is not ELF."""
    with open(path, "rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    order = "little" if header[5] == 1 else "big"
    machine = int.from_bytes(header[18:20], order)
    return _ELF_MACHINES.get(machine, f"e_machine {machine}")


def glibc_needed(path: Path) -> tuple[int, ...]:
    """The newest GLIBC_x.y symbol version named in the file, () when none. A plain byte search:
    a stray string that looks like one can only make the check stricter."""
    found = _GLIBC.findall(path.read_bytes())
    return max((tuple(int(n) for n in v.decode().split(".")) for v in found), default=())


def check_native(lib: Path, arch: str, python: str, max_glibc: tuple[int, ...]) -> NativeReport:
    """Every ELF file below `lib` must suit a Linux `arch` NAS with CPython `python` (x.y.z)."""
    problems: list[str] = []
    files, newest = 0, ()
    wanted_tag = "".join(python.split(".")[:2])
    for path in sorted(p for p in lib.rglob("*") if p.is_file() and not p.is_symlink()):
        machine = elf_machine(path)
        if machine is None:
            continue
        files += 1
        name = path.relative_to(lib).as_posix()
        if machine != arch:
            problems.append(f"{name} is for {machine}, not {arch}")
        glibc = glibc_needed(path)
        newest = max(newest, glibc)
        if glibc > max_glibc:
            problems.append(f"{name} needs GLIBC_{dotted(glibc)}, the NAS has {dotted(max_glibc)}")
        tag = _CPYTHON_TAG.search(path.name)
        if tag and (tag.group(1), tag.group(2)) != (wanted_tag, arch):
            problems.append(f"{name} is an extension for another Python or architecture")
    if problems:
        raise NativeCodeError(problems)
    return NativeReport(files, newest)


def machine_markers(lib: Path) -> list[str]:
    """Requires-Dist lines of the installed metadata that depend on the CPU architecture (pip
    evaluates those for the build host, whatever --platform says)."""
    found = []
    for metadata in sorted(lib.glob("*.dist-info/METADATA")):
        for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Requires-Dist:") and "platform_machine" in line:
                found.append(f"{metadata.parent.name}: {line}")
    return found


def dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in version)
