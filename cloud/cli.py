"""`certdrop`: the operator's command line. Translates arguments into calls of the core.

Exit codes: 0 done; 1 unexpected failure (a bug: the traceback is printed); 2 bad usage or
configuration; 3 DNS (provider, propagation); 4 ACME (CA refused, rate limit, validation);
5 object store or key store; 6 the issued certificate failed our checks.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cloud import config as config_module
from cloud import log as log_setup
from cloud import runtime
from cloud.errors import (
    AcmeError,
    CertdropError,
    ConfigError,
    DnsError,
    IssuanceError,
    SecretError,
    StoreError,
)

log = logging.getLogger("cloud.cli")

EXIT_OK, EXIT_BUG, EXIT_CONFIG, EXIT_DNS, EXIT_ACME, EXIT_STORE, EXIT_ISSUED = range(7)
_EXIT_BY_ERROR = (
    (ConfigError, EXIT_CONFIG),
    (SecretError, EXIT_CONFIG),
    (DnsError, EXIT_DNS),
    (AcmeError, EXIT_ACME),
    (StoreError, EXIT_STORE),
    (IssuanceError, EXIT_ISSUED),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certdrop",
        description="Issue wildcard certificates by ACME DNS-01 and deliver them to NAS agents.",
    )
    parser.add_argument(
        "--config", "-c", type=Path, default=Path("certdrop.toml"), help="configuration file"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.add_argument("--json-logs", action="store_true", help="log JSON lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    issue = commands.add_parser("issue", help="issue one site's certificate now")
    issue.add_argument("site", help="the site id (a [sites.ID] table of the configuration)")
    issue.add_argument(
        "--out", type=Path, required=True, help="write privkey/cert/chain/fullchain PEMs here"
    )
    issue.set_defaults(run=_issue)
    return parser


def _issue(args: argparse.Namespace) -> int:
    from cloud.output import write_pem_files

    config = config_module.load(args.config)
    cert = runtime.issue_site(config, args.site)
    paths = write_pem_files(args.out, cert)
    print(
        f"issued {cert.site}: {', '.join(cert.names)}\n"
        f"  key type     {cert.key_type.value}\n"
        f"  serial       {cert.serial:x}\n"
        f"  valid        {cert.not_before:%Y-%m-%d %H:%M} to {cert.not_after:%Y-%m-%d %H:%M} UTC\n"
        f"  issuer       {cert.issuer_cn}\n"
        f"  sha256       {cert.fingerprint_sha256}\n"
        f"  written to   {paths['fullchain.pem'].parent}"
    )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log_setup.setup(verbose=args.verbose, json_lines=args.json_logs or None)
    try:
        return args.run(args)
    except CertdropError as exc:
        # One clear line (the config error lists each problem below it).
        print(f"certdrop: error: {exc}", file=sys.stderr)
        return next((code for cls, code in _EXIT_BY_ERROR if isinstance(exc, cls)), EXIT_BUG)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
