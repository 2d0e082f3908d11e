"""Property tests: whatever bytes reach the opener, only BundleError subclasses escape.

Each test feeds arbitrary or mutated input at one stage, with everything before that stage made
valid (an issuer that signs and seals whatever it is handed), so the parser under test really
sees the input. Any other exception fails the test: it would be a parsing bug.
"""

from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from lab.sample_bundles import HEADER_V1, SITE, make_world, seal_raw
from nas_agent.bundle import build_index, sign_entry
from nas_agent.bundle.plaintext import encode_plaintext
from nas_agent.errors import BundleError

WORLD = make_world()
PLAINTEXT = WORLD.plaintext(version=2)
PUBLISHED = WORLD.publish(PLAINTEXT, "nas-a")
INDEX = build_index([PUBLISHED.entry])
INDEX_DOCUMENT = json.loads(INDEX)
PLAINTEXT_DOCUMENT = json.loads(encode_plaintext(PLAINTEXT))

SETTINGS = settings(max_examples=150, deadline=None)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
mutations = st.lists(
    st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
    min_size=1,
    max_size=6,
)


def open_or_refuse(index_bytes: bytes, sealed: bytes):
    """The opened bundle, or None if refused with a BundleError; anything else propagates."""
    try:
        return WORLD.open("nas-a", index_bytes, sealed)
    except BundleError:
        return None


def mutate(data: bytes, changes) -> bytes:
    changed = bytearray(data)
    for position, value in changes:
        changed[position % len(changed)] = value
    return bytes(changed)


def signed_for(sealed: bytes) -> bytes:
    """index.json whose entry signs `sealed`, so the opener goes past the hash check."""
    entry = sign_entry(PLAINTEXT, sealed, agent_id="nas-a", signing_key=WORLD.issuer.signing_key)
    return build_index([entry])


def sealed_bytes(data: bytes) -> bytes:
    agent = WORLD.agents["nas-a"].box_key.public_key()
    return seal_raw(data, agent, recipient_id="nas-a", site=SITE, version=2)


@SETTINGS
@given(st.binary(max_size=2048))
def test_arbitrary_index_bytes_are_refused_with_a_bundle_error(data):
    assert open_or_refuse(data, PUBLISHED.sealed) is None


@SETTINGS
@given(mutations)
def test_a_mutated_index_is_refused_or_still_means_the_same_entry(changes):
    opened = open_or_refuse(mutate(INDEX, changes), PUBLISHED.sealed)
    assert opened is None or opened.entry == PUBLISHED.entry


@SETTINGS
@given(st.sampled_from(sorted(INDEX_DOCUMENT["entries"][0])), json_values)
def test_an_entry_field_replaced_by_any_json_value_is_refused(name, value):
    entry = dict(INDEX_DOCUMENT["entries"][0], **{name: value})
    document = dict(INDEX_DOCUMENT, entries=[entry])
    opened = open_or_refuse(json.dumps(document).encode(), PUBLISHED.sealed)
    assert opened is None or value == INDEX_DOCUMENT["entries"][0][name]


@SETTINGS
@given(json_values)
def test_any_json_document_as_index_is_refused(value):
    assert open_or_refuse(json.dumps(value).encode(), PUBLISHED.sealed) is None


@SETTINGS
@given(st.binary(max_size=256) | st.binary(max_size=256).map(lambda tail: HEADER_V1 + tail))
def test_arbitrary_sealed_bytes_signed_by_the_issuer_are_refused(data):
    assert open_or_refuse(signed_for(data), data) is None


@SETTINGS
@given(mutations)
def test_a_mutated_sealed_object_signed_by_the_issuer_is_refused(changes):
    tampered = mutate(PUBLISHED.sealed, changes)
    opened = open_or_refuse(signed_for(tampered), tampered)
    assert opened is None or tampered == PUBLISHED.sealed


@SETTINGS
@given(st.binary(max_size=1024))
def test_arbitrary_opened_bytes_are_refused(data):
    sealed = sealed_bytes(data)
    assert open_or_refuse(signed_for(sealed), sealed) is None


@SETTINGS
@given(st.sampled_from(sorted(PLAINTEXT_DOCUMENT)), json_values)
def test_a_plaintext_field_replaced_by_any_json_value_is_refused(name, value):
    document = dict(PLAINTEXT_DOCUMENT, **{name: value})
    sealed = sealed_bytes(json.dumps(document).encode())
    opened = open_or_refuse(signed_for(sealed), sealed)
    assert opened is None or value == PLAINTEXT_DOCUMENT[name]


@SETTINGS
@given(mutations)
# Found on Python 3.8: cryptography 47 raised InvalidVersion, not ValueError, for this leaf.
@example(changes=[(58, 43)])
def test_a_mutated_plaintext_is_refused_or_still_holds_the_signed_certificate(changes):
    data = mutate(encode_plaintext(PLAINTEXT), changes)
    sealed = sealed_bytes(data)
    opened = open_or_refuse(signed_for(sealed), sealed)
    # issued_at is not checked against anything, so a mutation there may still open.
    assert opened is None or opened.material.sha256 == PUBLISHED.entry.cert_sha256


def test_the_unmutated_inputs_open():
    # The properties above mean something only if the same path opens the valid bundle.
    assert open_or_refuse(INDEX, PUBLISHED.sealed) is not None
    sealed = sealed_bytes(encode_plaintext(PLAINTEXT))
    assert open_or_refuse(signed_for(sealed), sealed) is not None
