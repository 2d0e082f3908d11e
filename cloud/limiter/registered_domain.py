"""A name's registered domain, as Let's Encrypt counts certificates per registered domain: the
public suffix plus one label, by the Public Suffix List (its ICANN and private sections).

The list is the snapshot shipped inside `tldextract` (a dependency already, for Lexicon), read
with no suffix-list URL and no cache directory: it is never fetched at run time. `PSL_VERSION`
is the snapshot's own `// VERSION:` line, which `tldextract` updates with each release. A name
under no listed suffix (a lab's `.test`) falls to the list's default rule `*`: its last label is
the suffix.
"""

from __future__ import annotations

import functools
import importlib.resources
import threading

_lock = threading.Lock()


@functools.cache
def _extractor():
    import tldextract  # ~0.1 s to import: only when a limit per registered domain is in force

    return tldextract.TLDExtract(
        suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
    )


@functools.lru_cache(maxsize=65536)
def registered_domain(name: str) -> str:
    """`example.co.uk` for `*.nas.example.co.uk`; the name itself when it is a suffix."""
    host = name.removeprefix("*.").rstrip(".").lower()
    with _lock:  # tldextract builds its tables on first use; a thread pool may ask at once
        parts = _extractor()(host)
    if parts.suffix and parts.domain:
        return f"{parts.domain}.{parts.suffix}"
    if parts.suffix:
        return host  # a public suffix itself: nothing to add
    labels = host.split(".")
    return ".".join(labels[-2:])


def psl_version() -> str:
    """The snapshot's `// VERSION:` line ("2025-04-07_15-51-09_UTC"), or "unknown"."""
    try:
        text = importlib.resources.files("tldextract").joinpath(".tld_set_snapshot").read_text()
    except (OSError, ModuleNotFoundError):
        return "unknown"
    for line in text.splitlines()[:40]:
        if line.startswith("// VERSION:"):
            return line.removeprefix("// VERSION:").strip()
    return "unknown"
