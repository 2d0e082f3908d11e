"""The agent's configuration: one INI file (UTF-8, a byte order mark allowed), parsed once into
frozen dataclasses.

Every problem is collected and reported together, each naming the key, what is wrong and what to
write instead. `#` or `;` at the start of a line, or after a space, starts a comment. An indented
line continues the value above it. An empty value is the same as leaving the key out. Relative
paths are relative to the directory of the configuration file. Secrets never appear in it: they
are read from files that only the agent's user may read (mode 0600; `check_runnable` refuses
others, naming the file and the chmod that fixes it).

    [agent]
    id = nas-01                   # required: the agent id chosen at enrollment
    issuer_key = certdrop-issuer-v1:...
                                  # the issuer key line the operator gave back at enrollment;
                                  # needed to run (not to enroll): other signers are refused
    keys_dir = keys               # the agent's own key files (default: keys/ beside this file)
    state_file = state.json       # installed versions, last success and error (default shown)
    poll_interval = 1h            # how often the agent runs: `run --every`'s pause, and what
                                  # it tells the operator (quiet after 3 missed reports);
                                  # 3600, 3600s, 60m or 1h; from 60 s to a week
    # accept_index_v1_until = 2027-01-31T00:00:00Z
                                  # written by `certdrop-agent upgrade`: until then, and only
                                  # while no v2 index was seen, the old index format is read

    [source]
    url = s3://bucket/prefix      # required: s3://bucket/prefix, https://host/path/, file:///dir
    region = eu-central-1         # s3 only
    credentials_file = aws-creds  # s3 only: AWS shared-credentials file, [default] section,
                                  # mode 0600; without it, the AWS environment,
                                  # then ~/.aws/credentials
    # endpoint_url = https://minio.lan:9000
                                  # s3 only: an S3-compatible service (path-style addressing)
    # addressing_style = path     # s3 only: auto, path or virtual (auto: virtual-hosted on
                                  # AWS, path-style with endpoint_url)
    # ca_file = store-ca.pem      # s3 and https: CA bundle for the endpoint's certificate
    # timeout = 30                # seconds per request, its answer's headers and body
                                  # included; at most 1h

    [dsm]
    url = https://127.0.0.1:5001  # DSM's HTTPS address (default shown)
    username = certdrop           # required: an administrator account (2FA is supported)
    password_file = dsm-password  # the account's password in a 0600 file, or instead:
    # password_env = DSM_PASSWORD # an environment variable holding it (exactly one of the two)
    # device_id_file = dsm-device-id
                                  # the remembered 2FA device, written by `certdrop-agent
                                  # dsm-login`, mode 0600 (default shown)
    # ca_file = dsm-ca.pem        # trust DSM's certificate through this CA; without it, the
                                  # agent pins the one DSM presents at its first connection
                                  # (dsm-tls-pin, beside state_file) and those it installs
    # insecure = true             # check nothing: not recommended, refused unless url is local
    # timeout = 90                # seconds per DSM request (logins can be slow); at most 1h
    # confirm_timeout = 60        # seconds to wait for DSM to serve the new certificate;
                                  # at most 1h
    # temp_admin = true           # instead of username and password: the agent, as root on
                                  # the NAS, makes a temporary administrator with DSM's tools
                                  # for each run and deletes it after (2FA is lifted only for
                                  # its login, and put back by the next run if one is killed
                                  # meanwhile); url must be local (127.0.0.1, localhost, ::1)

    [site:example.com]            # one section per site, named by the cloud's site id
    hostnames = nas.example.com, files.example.com
                                  # required: names the certificate must cover; the first is
                                  # the SNI name of the handshake that confirms the install
    # description = certdrop example.com
                                  # the DSM certificate to replace (default shown)
    make_default = false          # make it DSM's default certificate (one site at most)
    services = FTPS, WebDAV       # DSM services to bind to it, by name (optional)
"""

from __future__ import annotations

import os
from typing import Mapping

from cryptography.hazmat.primitives.asymmetric import ed25519

from nas_agent import redaction
from nas_agent.config.errors import AgentConfigError, ConfigProblem, SecretFileError
from nas_agent.config.reader import read_config
from nas_agent.config.types import (
    DEFAULT_DSM_URL,
    AgentConfig,
    AgentSettings,
    DsmConfig,
    SiteConfig,
    SourceConfig,
)
from nas_agent.secret_files import check_secret_file, read_secret_file

__all__ = [
    "DEFAULT_DSM_URL",
    "AgentConfig",
    "AgentSettings",
    "DsmConfig",
    "SiteConfig",
    "SourceConfig",
    "check_runnable",
    "dsm_password",
    "load_config",
    "parse_config",
]


def load_config(path: str) -> AgentConfig:
    """Read and check the file; raise AgentConfigError listing every problem."""
    try:
        # utf-8-sig: an editor that saves a byte order mark (Windows Notepad) would otherwise
        # glue it to the first line, and every key of [agent] would seem to come before it.
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        cause = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise AgentConfigError(
            [ConfigProblem("(file)", f"cannot read ({cause})", "check the path")], path
        ) from exc
    return parse_config(text, path)


def parse_config(text: str, path: str) -> AgentConfig:
    """Check `text` as the file at `path` (which anchors relative paths); touches no file."""
    return read_config(text, os.path.abspath(path))


def check_runnable(
    config: AgentConfig, environ: Mapping[str, str] = os.environ
) -> ed25519.Ed25519PublicKey:
    """What `run` needs beyond a well-formed file: the pinned issuer key, secrets files that
    exist and only this user can read, the password variable, CA files. Raises AgentConfigError
    listing every problem, each naming the file and the command that fixes it; returns the
    pinned issuer key."""
    problems: list[ConfigProblem] = []
    if config.agent.issuer_key is None:
        problems.append(
            ConfigProblem(
                "agent.issuer_key",
                "missing: bundles cannot be verified without the pinned issuer key",
                "write issuer_key = <the certdrop-issuer-v1:... line the operator gave you>",
            )
        )
    dsm, source = config.dsm, config.source
    secrets = [
        ("dsm.password_file", dsm.password_file),
        ("source.credentials_file", source.credentials_file),
    ]
    if os.path.exists(dsm.device_id_file):
        secrets.append(("dsm.device_id_file", dsm.device_id_file))
    for key, secret in secrets:
        if secret is not None:
            try:
                check_secret_file(secret, key=key)
            except SecretFileError as exc:
                problems.extend(exc.problems)
    if dsm.password_env is not None and not environ.get(dsm.password_env):
        problems.append(
            ConfigProblem(
                "dsm.password_env",
                f"the variable {dsm.password_env} is not set or empty",
                "set it in the task's environment, or use password_file",
            )
        )
    for key, ca_file in (("dsm.ca_file", dsm.ca_file), ("source.ca_file", source.ca_file)):
        if ca_file is not None and not os.path.isfile(ca_file):
            problems.append(ConfigProblem(key, f"{ca_file} does not exist", "give a PEM file"))
    if problems or config.agent.issuer_key is None:
        raise AgentConfigError(problems, config.path)
    return config.agent.issuer_key


def dsm_password(dsm: DsmConfig, environ: Mapping[str, str] = os.environ) -> str:
    """The DSM password from its 0600 file or its variable; AgentConfigError if unavailable."""
    if dsm.temp_admin:
        raise AgentConfigError(
            [
                ConfigProblem(
                    "dsm.temp_admin",
                    "set: the agent logs in as a temporary account and has no password",
                    "nothing to do (no 2FA device to remember), or remove temp_admin",
                )
            ]
        )
    if dsm.password_file is not None:
        value = read_secret_file(dsm.password_file, key="dsm.password_file")
    else:
        value = environ.get(dsm.password_env or "", "")
        if not value:
            raise AgentConfigError(
                [ConfigProblem("dsm.password_env", f"{dsm.password_env} is not set", "set it")]
            )
    redaction.register(value, short_as_word=True)  # a password, however short
    return value
