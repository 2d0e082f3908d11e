"""Writing an issued certificate to a directory as PEM files (`certdrop issue --out DIR`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cloud.acme.order import IssuedCertificate


def write_pem_files(directory: Path, cert: IssuedCertificate) -> dict[str, Path]:
    """Writes the PKCS#8 key (mode 0600), the leaf, the chain and the full chain, each atomically,
    and returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        "privkey.pem": cert.key_pem,
        "cert.pem": cert.cert_pem.encode(),
        "chain.pem": cert.chain_pem.encode(),
        "fullchain.pem": cert.fullchain_pem.encode(),
    }
    paths = {}
    for name, data in contents.items():
        mode = 0o600 if name == "privkey.pem" else 0o644
        paths[name] = _write_atomically(directory / name, data, mode)
    return paths


def _write_atomically(path: Path, data: bytes, mode: int) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
