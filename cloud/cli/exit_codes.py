"""`certdrop`'s exit codes, and which error means which.

0 done; 1 unexpected failure (a bug: the traceback is printed); 2 bad usage, configuration or
request (unknown site or agent, bad token, issuer not initialized); 3 DNS (provider,
propagation); 4 ACME (CA refused, rate limit, validation); 5 object store or key store, or the
Secrets Manager holding a referenced secret unreachable, or the KMS key holding the ACME account
key unusable or unreachable (an account whose key is not `ca.account_key`: 2); 6 the issued
certificate failed our checks; 7 alerts could not be delivered (they are sent again at the next
evaluation); 8 a `certdrop doctor` check failed (its output names each finding).
"""

from __future__ import annotations

from cloud.errors import (
    AccountKeyError,
    AccountKeyMismatch,
    AcmeError,
    AlertDeliveryFailed,
    ConfigError,
    DnsError,
    EscrowUnavailable,
    IssuanceError,
    SecretError,
    SecretUnavailable,
    StoreError,
)

EXIT_OK, EXIT_BUG, EXIT_CONFIG, EXIT_DNS, EXIT_ACME, EXIT_STORE, EXIT_ISSUED, EXIT_ALERTS = range(8)
EXIT_DOCTOR = 8
EXIT_BY_ERROR = (
    (AlertDeliveryFailed, EXIT_ALERTS),
    (ConfigError, EXIT_CONFIG),
    (AccountKeyMismatch, EXIT_CONFIG),  # before AccountKeyError, its base
    (AccountKeyError, EXIT_STORE),
    (SecretUnavailable, EXIT_STORE),  # before SecretError, its base
    (SecretError, EXIT_CONFIG),
    (DnsError, EXIT_DNS),
    (AcmeError, EXIT_ACME),
    (StoreError, EXIT_STORE),
    (EscrowUnavailable, EXIT_STORE),  # a certificate that cannot reach an agent from escrow
    (IssuanceError, EXIT_ISSUED),
)


def exit_code(exc: Exception) -> int:
    return next((code for cls, code in EXIT_BY_ERROR if isinstance(exc, cls)), EXIT_CONFIG)
