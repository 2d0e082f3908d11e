"""TXT values in presentation form (`_txt`), as the PowerDNS and Route 53 APIs give them: our
values round-trip, `\\DDD` (decimal, RFC 1035 section 5.1) and `\\OOO` (octal, Route 53) are
bytes, and no text a server returns makes the parser raise."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud.dns01.providers import _txt


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=600))
def test_an_ascii_value_round_trips(value: str) -> None:
    assert _txt.unquote(_txt.quote(value)) == value
    assert _txt.unquote(_txt.quote(value), _txt.OCTAL) == value


def test_three_digit_escapes_are_bytes_in_the_server_s_radix() -> None:
    assert _txt.unquote('"caf\\195\\169"') == "café"
    assert _txt.unquote('"caf\\303\\251"', _txt.OCTAL) == "café"
    assert _txt.unquote('"a\\"b\\\\c" "d"') == 'a"b\\cd'


@given(st.text(), st.sampled_from([_txt.DECIMAL, _txt.OCTAL]))
def test_any_text_a_server_returns_is_parsed_without_raising(text: str, radix: int) -> None:
    assert isinstance(_txt.unquote(text, radix), str)
