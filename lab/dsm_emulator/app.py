"""The Flask application: DSM's ``/webapi`` CGIs plus the ``/_emulator`` control endpoints."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

from flask import Flask, Response, jsonify, request

from . import auth, certificates, system
from .envelope import ApiFailure, failure, success
from .faults import AccountState, Faults
from .profiles import Profile, profile_named
from .recording import Incoming, parse, record
from .state import Emulator

INFO = "SYNO.API.Info"
AUTH = "SYNO.API.Auth"
UI_CONFIG = "SYNO.API.Auth.UIConfig"
ENCRYPTION = "SYNO.API.Encryption"
MISSING_API_FIELDS = 101
NO_SUCH_API = 102
NO_SUCH_METHOD = 103
BAD_VERSION = 104
_EXTENSION = "dsm_emulator"

Handler = Callable[[Emulator, Incoming, int], Response]


@dataclass(frozen=True)
class _Api:
    path: str
    min_version: int
    max_version: int
    methods: frozenset[str] = frozenset()
    json_format: bool = False
    # CGIs that answer the API as well as ``path`` (discovery reports ``path`` only).
    also_at: frozenset[str] = frozenset()

    def answers_at(self, cgi: str) -> bool:
        return cgi == self.path or cgi in self.also_at


def _apis(profile: Profile) -> dict[str, _Api]:
    core = _Api("entry.cgi", 1, 1, json_format=True)
    apis = {
        # SYNO.API.Info is always answered at query.cgi, wherever discovery lists it.
        INFO: _Api(profile.info_path, 1, 1, frozenset({"query"}), also_at=frozenset({"query.cgi"})),
        AUTH: _Api(
            profile.auth_path,
            1,
            profile.auth_max_version,
            frozenset({"login", "logout"}),
            also_at=profile.auth_also_at,
        ),
        # N4S4 asks for it at encryption.cgi whatever discovery says (§3.2).
        ENCRYPTION: _Api(
            profile.encryption_path,
            1,
            1,
            frozenset({"getinfo"}),
            also_at=frozenset({"encryption.cgi"}),
        ),
        "SYNO.API.OTP": _Api("otp.cgi", 1, 1),
        "SYNO.DSM.Info": _Api("entry.cgi", 1, 2, frozenset({"getinfo"}), json_format=True),
        "SYNO.Core.Certificate": dataclasses.replace(core, methods=frozenset({"import", "export"})),
        "SYNO.Core.Certificate.CRT": dataclasses.replace(
            core, methods=frozenset({"list", "set", "delete"})
        ),
        "SYNO.Core.Certificate.Service": dataclasses.replace(core, methods=frozenset({"set"})),
        "SYNO.Core.Certificate.CSR": core,
        "SYNO.Core.Certificate.LetsEncrypt": core,
        "SYNO.Core.Certificate.LetsEncrypt.Account": core,
    }
    if profile.auth_ui_config:
        apis[UI_CONFIG] = _Api("entry.cgi", 1, 1, frozenset({"get"}), json_format=True)
    return apis


_HANDLERS: dict[tuple[str, str], Handler] = {
    (AUTH, "login"): auth.login,
    (AUTH, "logout"): auth.logout,
    (UI_CONFIG, "get"): auth.ui_config,
    (ENCRYPTION, "getinfo"): auth.encryption_info,
    ("SYNO.DSM.Info", "getinfo"): system.dsm_info,
    ("SYNO.Core.Certificate", "import"): certificates.import_certificate,
    ("SYNO.Core.Certificate", "export"): certificates.export_certificate,
    ("SYNO.Core.Certificate.CRT", "list"): certificates.list_certificates,
    ("SYNO.Core.Certificate.CRT", "set"): certificates.set_certificate,
    ("SYNO.Core.Certificate.CRT", "delete"): certificates.delete_certificates,
    ("SYNO.Core.Certificate.Service", "set"): certificates.set_services,
}


def _discovery(apis: dict[str, _Api], incoming: Incoming) -> Response:
    # No query at all lists every API, as query=all does: [MIB] discovers that way and logs in
    # to real DSM 6 and 7 (§2 records only the named forms; the lenient reading).
    wanted = incoming.param("query") or "all"
    names = list(apis) if wanted == "all" else [n.strip() for n in wanted.split(",")]
    data = {}
    for name in names:
        api = apis.get(name)
        if api is None:
            continue  # emulator choice: unknown names are left out
        entry: dict[str, object] = {
            "maxVersion": api.max_version,
            "minVersion": api.min_version,
            "path": api.path,
        }
        if api.json_format:
            entry["requestFormat"] = "JSON"
        data[name] = entry
    return success(data)


def _dispatch(emu: Emulator, apis: dict[str, _Api], incoming: Incoming) -> Response:
    name, method, version_text = (incoming.param(k) for k in ("api", "method", "version"))
    if not (name and method and version_text):
        raise ApiFailure(MISSING_API_FIELDS)
    api = apis.get(name)
    if api is None or not api.answers_at(incoming.cgi):
        raise ApiFailure(NO_SUCH_API)
    try:
        version = int(version_text)
    except ValueError:
        raise ApiFailure(BAD_VERSION) from None
    if not api.min_version <= version <= api.max_version:
        raise ApiFailure(BAD_VERSION)
    if method not in api.methods:
        raise ApiFailure(NO_SUCH_METHOD)
    if name == INFO:
        return _discovery(apis, incoming)
    return _HANDLERS[(name, method)](emu, incoming, version)


def emulator_of(app: Flask) -> Emulator:
    return app.extensions[_EXTENSION]


def make_app(
    data_dir: str,
    user: str,
    password: str,
    otp_secret: str | None = None,
    profile: str = "dsm7",
    admin: bool = True,
    *,
    account: AccountState | None = None,
    faults: Faults | None = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """A DSM emulator over the certificate store in ``data_dir`` (created at first start).

    ``account`` overrides the whole account state (``admin`` is its shortcut); ``clock`` is
    what TOTP checks and the factory certificate's dates use.
    """
    account_state = dataclasses.replace(account or AccountState(), admin=admin)
    emu = Emulator(
        data_dir,
        user,
        password,
        otp_secret,
        profile_named(profile),
        account_state,
        faults or Faults(),
        clock,
    )
    apis = _apis(emu.profile)
    app = Flask(__name__)
    app.extensions[_EXTENSION] = emu

    # DSM's web UI form /webapi/<cgi>/<API name> is answered like /webapi/<cgi>: [N4S4] sends
    # its requestFormat-JSON calls and multipart uploads there, and UIConfig (§2, §3.2).
    @app.route("/webapi/<cgi>", methods=["GET", "POST"])
    @app.route("/webapi/<cgi>/<api_name>", methods=["GET", "POST"])
    def webapi(cgi: str, api_name: str | None = None) -> Response:
        incoming = parse(request, cgi)
        emu.log.append(record(incoming, request.path))
        try:
            return _dispatch(emu, apis, incoming)
        except ApiFailure as error:
            return failure(error)

    _add_controls(app, emu)
    return app


def _add_controls(app: Flask, emu: Emulator) -> None:
    def _update(update: Callable[..., AccountState | Faults]) -> Response:
        try:
            changed = update(**(request.get_json(force=True) or {}))
        except (TypeError, ValueError) as exc:
            return Response(str(exc), status=400, content_type="text/plain")
        return jsonify(dataclasses.asdict(changed))

    @app.route("/_emulator/faults", methods=["GET", "POST"])
    def faults() -> Response:
        if request.method == "GET":
            return jsonify(dataclasses.asdict(emu.controls.faults))
        return _update(emu.controls.update_faults)

    @app.route("/_emulator/account", methods=["GET", "POST"])
    def account() -> Response:
        if request.method == "GET":
            return jsonify(dataclasses.asdict(emu.controls.account))
        return _update(emu.controls.update_account)

    @app.route("/_emulator/devices/revoke", methods=["POST"])
    def revoke_devices() -> Response:
        return jsonify({"revoked": emu.devices.revoke_all()})

    @app.route("/_emulator/restart_httpd", methods=["POST"])
    def restart_httpd() -> Response:
        emu.restart_httpd()
        return jsonify({"served": emu.store.served().id})

    @app.route("/_emulator/requests", methods=["GET", "DELETE"])
    def requests_log() -> Response:
        if request.method == "DELETE":
            emu.log.clear()
            return jsonify({"cleared": True})
        return jsonify([r.to_json() for r in emu.log.snapshot()])
