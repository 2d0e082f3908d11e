"""`python -m lab.dsm_emulator`: one emulated DSM in the foreground (try the agent without a NAS).

    python -m lab.dsm_emulator --data DIR --http-port 5000 --https-port 5001 \
        --user certdrop --password secret [--otp-secret BASE32] [--profile dsm7]
"""

from __future__ import annotations

import argparse

from lab.dsm_emulator import serve


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.dsm_emulator", description=__doc__)
    parser.add_argument("--data", required=True, help="directory for its persistent state")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--https-port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--otp-secret", help="base32 TOTP secret: the account requires 2FA")
    parser.add_argument("--profile", choices=("dsm6", "dsm7", "dsm7.4"), default="dsm7")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    handle = serve(
        args.data,
        args.http_port,
        args.https_port,
        args.user,
        args.password,
        otp_secret=args.otp_secret,
        profile=args.profile,
        host=args.host,
    )
    print(f"DSM emulator ({args.profile}): {handle.http_url} and {handle.https_url}", flush=True)
    try:
        handle.wait()
    except KeyboardInterrupt:
        handle.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
