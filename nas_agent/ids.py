"""The shapes of host names, agent ids and site ids: the one owner of each rule, shared by the
cloud (its configuration, its DNS-01 names) and the agent (its configuration, bundles, state).

Agent and site ids end up in object keys (`agents/<agent>/bundles/<site>/<version>.sealed`), in
HPKE `info` and in signed statements, so they are plain lowercase ASCII and can never contain `/`,
`=`, whitespace or a line break.

A host name is what a certificate names and DSM is reached by: two or more labels of lower-case
letters, digits and inner hyphens (RFC 1123), at most 63 characters each, unicode labels in their
IDNA form; a wildcard (`*.`) only as the whole leftmost label.
"""

from __future__ import annotations

import re

AGENT_ID_PATTERN = "[a-z0-9][a-z0-9-]{0,62}"
# Sites may carry dots so an operator can name one after its domain (`example.com`).
SITE_ID_PATTERN = "[a-z0-9][a-z0-9.-]{0,62}"
HOST_LABEL_PATTERN = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
WILDCARD_PREFIX = "*."

_AGENT_ID = re.compile(AGENT_ID_PATTERN)
_SITE_ID = re.compile(SITE_ID_PATTERN)
_HOST_LABEL = re.compile(HOST_LABEL_PATTERN)


def is_agent_id(value: object) -> bool:
    return isinstance(value, str) and _AGENT_ID.fullmatch(value) is not None


def is_site_id(value: object) -> bool:
    return isinstance(value, str) and _SITE_ID.fullmatch(value) is not None


def ascii_hostname(text: str) -> str:
    """`text` lower-cased, without a trailing dot, unicode labels in their IDNA 2008 (ASCII)
    form, mapped as UTS 46 non-transitional: what browsers and CAs use. Python's own "idna"
    codec is IDNA 2003, which makes "straße.example" "strasse.example", another domain.

    Text IDNA 2008 cannot encode ("☃.example") comes back only lower-cased: `is_hostname`
    refuses it.
    """
    name = text.lower().rstrip(".")
    if name.isascii():
        return name
    # Only a unicode name needs it; the agent has it anyway, as requests' own dependency.
    import idna

    wildcard = WILDCARD_PREFIX if is_wildcard(name) else ""
    try:
        encoded = idna.encode(name[len(wildcard) :], uts46=True, transitional=False)
    except UnicodeError:  # idna.IDNAError is one
        return name
    return wildcard + encoded.decode("ascii")


def is_hostname(value: object, *, wildcard: bool = False) -> bool:
    """`value` is a host name in ASCII (`ascii_hostname` gives that form); with `wildcard`, one
    leading `*.` label is allowed too."""
    if not isinstance(value, str):
        return False
    name = value[len(WILDCARD_PREFIX) :] if wildcard and is_wildcard(value) else value
    labels = name.split(".")
    return len(labels) >= 2 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def is_wildcard(name: str) -> bool:
    return name.startswith(WILDCARD_PREFIX)
