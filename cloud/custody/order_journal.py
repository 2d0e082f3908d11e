"""The order an agent-custody run journals in the site state, and what a later run checks before
it trusts one (docs/key-custody.md, "What the issuer does").

    state/sites/<site>.json  agents.<agent>.order: sequence, csr, key_sha256, rekey, url, ...
                             and statement: the agent's signed CSR statement, its exact bytes

The site state is neither signed nor MACed: whoever can write `state/` can write an order entry,
with a CSR for a key of theirs. So the entry carries the statement the order was made from, and
a run places, resumes or finalizes a journalled order only after that statement passed again
every check a statement read from `agents/<agent>/csr/<site>.json` passes (the run's
`check_csr_statement`, with the agent's signed registry record) and `unsigned_part` finds
nothing in the entry that the statement does not sign.

The sequence check holds for a journalled statement as it did when it was accepted: the entry's
`sequence` moves only when the order is dropped (its certificate recorded, or the CA refused the
CSR), so the statement of an order in flight is still above it, while an older statement (one
already answered) put into the entry is refused as stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cloud.custody.agent_side import CheckedCsr, CsrMalformed
from cloud.pipeline.site_state import AgentOrder
from nas_agent._encoding import b64url_decode, b64url_encode

# A journalled order that its statement does not sign (its CSR, key, sequence or rekey differ),
# or one journalled before statements were whose CSR the agent's statement does not carry.
ORDER_UNSIGNED = "csr.order_unsigned"


@dataclass(frozen=True)
class AcceptedStatement:
    """A CSR statement that passed every check, with the bytes it was read as."""

    checked: CheckedCsr
    body: bytes


def journal(accepted: AcceptedStatement, *, rekey: bool, now: datetime) -> AgentOrder:
    """The order to journal for an accepted statement, the statement with it."""
    statement = accepted.checked.statement
    return AgentOrder(
        sequence=statement.sequence,
        csr=b64url_encode(statement.csr_der),
        key_sha256=accepted.checked.public_key_sha256,
        rekey=rekey,
        ordering_since=now,
        statement=b64url_encode(accepted.body),
    )


def journalled_statement(order: AgentOrder, *, agent: str, site: str) -> bytes | None:
    """The statement journalled with `order`; None when the entry was written before statements
    were journalled. CsrMalformed when the field is not base64url."""
    if order.statement is None:
        return None
    try:
        return b64url_decode(order.statement)
    except ValueError as exc:
        raise CsrMalformed(f"journalled: {exc}", agent_id=agent, site=site) from exc


def unsigned_part(order: AgentOrder, checked: CheckedCsr) -> str | None:
    """What of `order` the checked statement does not sign, for the refusal; None: nothing."""
    statement = checked.statement
    if order.csr != b64url_encode(statement.csr_der):
        return f"its CSR is not the one statement {statement.sequence} signs"
    if order.sequence != statement.sequence:
        return f"its sequence {order.sequence} is not the statement's ({statement.sequence})"
    if order.key_sha256 != checked.public_key_sha256:
        return "its key hash is not the one of the statement's CSR"
    if order.rekey and not statement.rekey:
        return "it is a rekey order, and the statement asks for no rekey"
    return None
