"""Reading a built .spk the way Package Center does: a plain tar of INFO, package.tgz, scripts/,
conf/, WIZARD_UIFILES/ and the icons; INFO is `key="value"` lines (Developer Guide, "INFO")."""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_INFO_LINE = re.compile(r'([a-z_0-9]+)="([^"]*)"')


def info_fields(text: str) -> dict[str, str]:
    """INFO's fields; a line that is not `key="value"` fails loudly."""
    fields = {}
    for line in text.splitlines():
        match = _INFO_LINE.fullmatch(line)
        assert match, f'INFO line {line!r} is not key="value"'
        fields[match.group(1)] = match.group(2)
    return fields


@dataclass(frozen=True)
class Spk:
    path: Path

    def members(self) -> dict[str, tarfile.TarInfo]:
        with tarfile.open(self.path, "r:") as tar:  # "r:": uncompressed, or this raises
            return {m.name: m for m in tar.getmembers()}

    def read(self, name: str) -> bytes:
        with tarfile.open(self.path, "r:") as tar:
            handle = tar.extractfile(name)
            assert handle is not None, f"{name} is not a file in {self.path.name}"
            return handle.read()

    def info(self) -> dict[str, str]:
        return info_fields(self.read("INFO").decode("utf-8"))

    def json(self, name: str) -> Any:
        return json.loads(self.read(name))

    def payload(self) -> dict[str, tarfile.TarInfo]:
        """package.tgz's entries."""
        with tarfile.open(fileobj=io.BytesIO(self.read("package.tgz")), mode="r:gz") as tar:
            return {m.name: m for m in tar.getmembers()}

    def unpack(self, into: Path) -> None:
        """The .spk's files into `into`, and package.tgz's into `into`/package."""
        with tarfile.open(self.path, "r:") as tar:
            tar.extractall(into, filter="data")
        with tarfile.open(into / "package.tgz", "r:gz") as tar:
            tar.extractall(into / "package", filter="data")
