"""`certdrop-agent join LINE`: set a NAS up from the operator's invitation, with no file edited
by hand.

In `directory` (created, or set, 0700): agent.conf, the agent's keys (made here; the private
halves never leave the NAS), the store's read credentials from the line (`source-credentials`,
0600, AWS's shared-credentials format) and a copy of the DSM password (`dsm-password`, 0600).
A directory the user running join cannot write or set 0700 (root made it and did not chown it)
is an AgentConfigError naming the `chown` that fixes it. Then the enrollment (`nas_agent.invite`) is
posted to the agent's own prefix in the store, for the operator's `certdrop agent approve`. A
source that cannot be written by nature (https://, a read-only share) gets nothing: the
enrollment is printed instead, for the operator to pass to `approve --enrollment`. An S3 store
that refuses the line's credentials raises its SourceError: that is no read-only store.

Run again with the same line, it keeps the keys and configuration it made and posts the
enrollment again (a join interrupted half-way converges). A directory holding another agent's
configuration is refused.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from nas_agent._atomic import make_private_dirs, write_atomic
from nas_agent.config import load_config
from nas_agent.config.errors import AgentConfigError, ConfigProblem
from nas_agent.config.types import DEFAULT_DSM_URL
from nas_agent.enrollment import enrollment_of, parse_issuer_key_line
from nas_agent.errors import KeyFileError
from nas_agent.invite import Invitation, enrollment_document, parse_invitation
from nas_agent.keys import AgentKeys, generate_agent_keys, load_agent_keys, save_agent_keys
from nas_agent.redaction import register
from nas_agent.sources import open_source

CONFIG_NAME = "agent.conf"
CREDENTIALS_NAME = "source-credentials"
PASSWORD_NAME = "dsm-password"
KEYS_NAME = "keys"
_PRIVATE = 0o600


@dataclass(frozen=True)
class Joined:
    agent_id: str
    config_path: str
    posted: bool  # False: the source is read-only; `enrollment` goes to the operator by hand
    enrollment: str


def join(
    line: str,
    directory: str,
    *,
    dsm_user: str,
    dsm_password: str,
    dsm_url: str = DEFAULT_DSM_URL,
) -> Joined:
    """Raises TokenError (the line), AgentConfigError (a directory it cannot write; or what it
    wrote does not load: a bug or a bad value in the line), KeyFileError, SourceError."""
    invitation = parse_invitation(line)
    register(line)
    parse_issuer_key_line(invitation.issuer_key_line)  # refused here, not at the first run
    try:
        keys, config_path = _write_files(invitation, directory, dsm_user, dsm_password, dsm_url)
    except OSError as exc:
        raise _not_writable(directory, exc) from exc
    config = load_config(config_path)  # what was written must be what the agent reads
    body = enrollment_document(invitation.secret, keys.agent_id, enrollment_of(keys).token())
    with open_source(config.source.url, keys.agent_id, **config.source.options()) as source:
        posted = source.put_enrollment(body)
    return Joined(keys.agent_id, config_path, posted, body.decode("ascii"))


def _write_files(
    invitation: Invitation, directory: str, dsm_user: str, dsm_password: str, dsm_url: str
) -> tuple[AgentKeys, str]:
    """The agent's keys (made unless there) and the path of agent.conf, its files written.
    Raises OSError, KeyFileError."""
    make_private_dirs(directory)
    config_path = os.path.join(directory, CONFIG_NAME)
    _refuse_another_agent(config_path, invitation.agent_id)
    keys_dir = os.path.join(directory, KEYS_NAME)
    make_private_dirs(keys_dir)
    try:
        keys = load_agent_keys(keys_dir, invitation.agent_id)
    except KeyFileError:
        keys = generate_agent_keys(invitation.agent_id)
        save_agent_keys(keys, keys_dir)
    if "access_key_id" in invitation.source:
        write_atomic(
            os.path.join(directory, CREDENTIALS_NAME),
            _credentials(invitation).encode("utf-8"),
            mode=_PRIVATE,
        )
    write_atomic(
        os.path.join(directory, PASSWORD_NAME), dsm_password.encode("utf-8"), mode=_PRIVATE
    )
    write_atomic(
        config_path, _agent_conf(invitation, dsm_user, dsm_url).encode("utf-8"), mode=_PRIVATE
    )
    return keys, config_path


def _not_writable(directory: str, exc: OSError) -> AgentConfigError:
    """What to run when the folder is not the joining user's: the README's guide has root make
    it, and the agent's user then owns it."""
    user = _user_name()
    where = f": {exc.filename}" if exc.filename else ""
    return AgentConfigError(
        [
            ConfigProblem(
                f"--dir {directory}",
                f"{user} cannot write there or set it 0700 ({exc.strerror}{where})",
                f"as root, run: mkdir -p {directory} && chown -R {user} {directory}"
                f" && chmod 700 {directory}; then join again as {user}",
            )
        ]
    )


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry
        return str(os.geteuid())


def _refuse_another_agent(config_path: str, agent_id: str) -> None:
    if not os.path.exists(config_path):
        return
    with open(config_path, encoding="utf-8") as handle:
        text = handle.read()
    if f"\nid = {agent_id}\n" not in text:
        raise KeyFileError(
            config_path, f"holds another agent's configuration, not {agent_id}'s: join elsewhere"
        )


def _credentials(invitation: Invitation) -> str:
    source = invitation.source
    return (
        "[default]\n"
        f"aws_access_key_id = {source['access_key_id']}\n"
        f"aws_secret_access_key = {source['secret_access_key']}\n"
    )


def _agent_conf(invitation: Invitation, dsm_user: str, dsm_url: str) -> str:
    source = invitation.source
    lines = [
        f"# written by `certdrop-agent join` from the invitation for {invitation.agent_id}",
        "[agent]",
        f"id = {invitation.agent_id}",
        f"issuer_key = {invitation.issuer_key_line}",
        "",
        "[source]",
        f"url = {source['url']}",
    ]
    for option in ("region", "endpoint_url", "addressing_style"):
        if source.get(option):
            lines.append(f"{option} = {source[option]}")
    if "access_key_id" in source:
        lines.append(f"credentials_file = {CREDENTIALS_NAME}")
    lines += ["", "[dsm]", f"url = {dsm_url}", f"username = {dsm_user}"]
    lines.append(f"password_file = {PASSWORD_NAME}")
    for position, (site, domain) in enumerate(sorted(invitation.sites.items())):
        lines += ["", f"[site:{site}]", f"hostnames = {domain}"]
        if position == 0:
            lines.append("make_default = true")  # DSM's web UI gets the first site's certificate
    return "\n".join(lines) + "\n"
