"""Stand-ins for DSM's `synouser`, `synogroup`, `synogetkeyvalue` and `synosetkeyvalue`.

Run as `fake_syno.py <tool> <args...>` (the shell wrappers `FakeSyno` puts on PATH do that).
State lives in JSON files in $FAKE_SYNO_DIR; every call is appended to its calls.log, one JSON
argv per line. Switches in switches.json: "groups" ("memberadd": DSM 7's synogroup, "member":
DSM 6's, which only has --member), "denied" (not root), "fail_add" (synouser --add fails),
"fail_del" (synouser --del fails), "members_text" (what --get prints after "Group Members"),
"kill_on_lift" (synosetkeyvalue, having set otp_enforce_option to none, SIGKILLs its caller: an
agent dying inside the 2FA window). With $FAKE_SYNO_DSM (a DSM emulator's URL), setting
otp_enforce_option also sets the emulator's enforced-2FA policy, as on a real NAS.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.request
from pathlib import Path

_DIR = Path(os.environ["FAKE_SYNO_DIR"])

_GROUP_HELP = {
    "memberadd": "  --member groupname user1 user2 ...\n  --memberadd groupname user1 ...\n"
    "  --memberdel groupname user1 ...\n",
    "member": "  --member groupname user1 user2 ...  set the member list\n",
}


def _load(name: str, default):
    path = _DIR / name
    return json.loads(path.read_text()) if path.exists() else default


def _save(name: str, value) -> None:
    (_DIR / name).write_text(json.dumps(value))


def _synouser(args: list, switches: dict) -> int:
    users = _load("users.json", {})
    if args[:1] == ["--help"]:
        print('synouser --add username pswd "full name" expired mail privilege\n--del user')
        return 255
    if args[:1] == ["--add"] and len(args) == 7:
        if switches.get("fail_add"):
            print("synouser add failed. [0x1A00 user_db_add.c:42]", file=sys.stderr)
            return 1
        users[args[1]] = args[2]
        _save("users.json", users)
        return 0
    if args[:1] == ["--del"] and len(args) == 2:
        if switches.get("fail_del") or args[1] not in users:
            print(f"Lost {args[1]}", file=sys.stderr)
            return 1
        del users[args[1]]
        _save("users.json", users)
        _save("members.json", [m for m in _load("members.json", []) if m != args[1]])
        return 0
    print(f"synouser: bad arguments {args}", file=sys.stderr)
    return 2


def _synogroup(args: list, switches: dict) -> int:
    members = _load("members.json", [])
    style = switches.get("groups", "memberadd")
    if args[:1] == ["--help"]:
        print("synogroup\n  --get groupname\n" + _GROUP_HELP[style])
        return 255
    if args[:2] == ["--get", "administrators"]:
        listing = "".join(f"{i}:[{name}]\n" for i, name in enumerate(members))
        print("Group Name: [administrators]\nGroup Type: [AUTH_LOCAL]\nGroup ID:   [101]")
        print("Group Members:\n" + switches.get("members_text", listing))
        return 0
    if args[:2] == ["--memberadd", "administrators"] and style == "memberadd":
        _save("members.json", members + args[2:])
        return 0
    if args[:2] == ["--member", "administrators"]:
        _save("members.json", args[2:])
        return 0
    print(f"synogroup: bad arguments {args}", file=sys.stderr)
    return 2


def _keyvalue(tool: str, args: list, switches: dict) -> int:
    values = _load("keyvalues.json", {})
    key = f"{args[0]}:{args[1]}"
    if tool == "synogetkeyvalue" and len(args) == 2:
        if key in values:
            print(values[key])
        return 0
    if tool == "synosetkeyvalue" and len(args) == 3:
        values[key] = args[2]
        _save("keyvalues.json", values)
        if args[1] == "otp_enforce_option":
            _set_dsm_policy(args[2] != "none")
            if args[2] == "none" and switches.get("kill_on_lift"):
                os.kill(os.getppid(), signal.SIGKILL)  # the wrapper exec'd: the parent is the agent
        return 0
    print(f"{tool}: bad arguments {args}", file=sys.stderr)
    return 2


def _set_dsm_policy(enforced: bool) -> None:
    dsm = os.environ.get("FAKE_SYNO_DSM")
    if not dsm:
        return
    request = urllib.request.Request(
        f"{dsm}/_emulator/account",
        data=json.dumps({"otp_enforced": enforced}).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    with opener.open(request, timeout=10) as answer:
        answer.read()


def main(tool: str, args: list) -> int:
    with open(_DIR / "calls.log", "a") as log:
        log.write(json.dumps([tool, *args]) + "\n")
    switches = _load("switches.json", {})
    if switches.get("denied"):
        print(f"{tool}: Permission denied", file=sys.stderr)
        return 1
    if tool == "synouser":
        return _synouser(args, switches)
    if tool == "synogroup":
        return _synogroup(args, switches)
    return _keyvalue(tool, args, switches)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
