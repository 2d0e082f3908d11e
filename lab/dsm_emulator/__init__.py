"""A Synology DSM web-API emulator for the certificate calls the agent makes.

It answers like DSM 6.2, 7.x or 7.4.1 (``profile``), over plain HTTP and over HTTPS with the
default certificate of its own store, which it persists in a data directory. Besides the agent's
calls it accepts the other client variants the reference records: acme.sh's GET login, N4S4's
POST login at auth.cgi (on DSM 7 too, after ``SYNO.API.Auth.UIConfig``, and over plain HTTP with
the credentials encrypted through ``SYNO.API.Encryption``), its calls to the path-info URLs
``/webapi/entry.cgi/<API>``, its sid-less logout and ``CRT.set``, Home Assistant's discovery
without ``query`` and its ``SYNO.DSM.Info`` read, dsm-certtool's cookie-only session, dsmctl's
import with every parameter a multipart field, and ``CRT.delete``.

Tests (and users trying the agent without a NAS) start it with ``serve(...)``; knobs under
``/_emulator/`` or on ``handle.emulator.controls`` set the account's state and inject faults,
and every ``/webapi`` request is recorded, secrets redacted, in ``handle.requests``. Behaviour
that no public source pins down is marked "emulator choice" where it is implemented.
"""

from .app import emulator_of, make_app
from .faults import AccountState, Faults
from .recording import RecordedPart, RecordedRequest
from .server import EmulatorHandle, serve

__all__ = [
    "AccountState",
    "EmulatorHandle",
    "Faults",
    "RecordedPart",
    "RecordedRequest",
    "emulator_of",
    "make_app",
    "serve",
]
