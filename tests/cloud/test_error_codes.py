"""Every error class, on both sides, lives in an errors.py and has its own stable code: the codes
cross the wire in agent reports and alerts, so they are unique and follow one scheme."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import cloud
import nas_agent
from cloud.errors import CertdropError
from nas_agent.errors import UNKNOWN_CODE, AgentError, BundleError, is_refusal
from nas_agent.legacy_error_kinds import code_for_kind

CODE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def _import_everything() -> None:
    """Every product module, so a class defined outside errors.py is in the trees too."""
    for package in (cloud, nas_agent):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not module.name.endswith(".__main__"):  # runs the command line
                importlib.import_module(module.name)


def _tree(root: type) -> list[type]:
    found = [root]
    for cls in found:  # grows while walked
        found.extend(cls.__subclasses__())
    return found


_import_everything()
CLASSES = _tree(CertdropError) + _tree(AgentError)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_each_error_class_lives_in_an_errors_module_and_has_its_own_code(cls):
    assert cls.__module__.rsplit(".", 1)[-1] == "errors", cls.__module__
    assert "code" in vars(cls), f"{cls.__name__} inherits its code"
    assert CODE.match(cls.code), cls.code


def test_no_two_error_classes_share_a_code():
    codes = [cls.code for cls in CLASSES]

    assert len(set(codes)) == len(codes)
    assert UNKNOWN_CODE not in codes


def test_a_refusal_is_told_by_its_code_alone():
    refusals = {cls for cls in CLASSES if is_refusal(cls.code)}

    assert refusals == set(_tree(BundleError))
    assert is_refusal("bundle.a_check_a_later_agent_adds")


def test_class_names_recorded_before_codes_map_to_the_codes_of_those_classes():
    assert code_for_kind("SealedHashMismatch") == "bundle.sealed_hash_mismatch"
    assert code_for_kind("InstallFailed") == "install.failed"
    assert code_for_kind("DsmOtpRequired") == "dsm.login_otp_required"
    assert code_for_kind("NoSuchErrorAnyMore") == UNKNOWN_CODE
