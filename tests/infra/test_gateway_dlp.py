"""Gateway's DLP block policy can match: TLS decryption is declared (or, when the account manages it,
left to the account and to the preflight), and the profile is either the custom one from
dlp-patterns.json or Cloudflare's predefined Financial Information + Social Security profiles, with the
entries that mirror the Worker's classes turned on."""

from __future__ import annotations

import pytest

import pulumi_offline as mocks
from infra.components.cloudflare.gateway_dlp import (
    PREDEFINED_PROFILES,
    PredefinedProfileError,
    predefined_entry_ids,
)
from pulumi_offline import TEST_ACCOUNT_ID

CF = "cloudflare:index"
SETTINGS = f"{CF}/zeroTrustGatewaySettings:ZeroTrustGatewaySettings"
GATEWAY = f"{CF}/zeroTrustGatewayPolicy:ZeroTrustGatewayPolicy"
CUSTOM_PROFILE = f"{CF}/zeroTrustDlpCustomProfile:ZeroTrustDlpCustomProfile"
CUSTOM_ENTRY = f"{CF}/zeroTrustDlpCustomEntry:ZeroTrustDlpCustomEntry"
PREDEFINED = f"{CF}/zeroTrustDlpPredefinedProfile:ZeroTrustDlpPredefinedProfile"
LOOKUP = f"{CF}/getZeroTrustDlpPredefinedProfile:getZeroTrustDlpPredefinedProfile"
ENTRIES = f"{CF}/getZeroTrustDlpPredefinedEntries:getZeroTrustDlpPredefinedEntries"
FINANCIAL, SSN = PREDEFINED_PROFILES


def entry_id(name: str) -> str:
    return mocks._uuid(name)


def test_tls_decryption_is_declared_before_the_policy_that_needs_it(stack_run):
    settings = stack_run.one(SETTINGS)
    assert settings.input("accountId") == TEST_ACCOUNT_ID
    assert settings.input("settings") == {"tlsDecrypt": {"enabled": True}}
    assert settings.urn in stack_run.one(GATEWAY).dependencies


def test_an_account_that_manages_tls_decryption_gets_no_gateway_settings(choices_run):
    assert choices_run.of_type(SETTINGS) == []
    assert choices_run.one(GATEWAY).input("enabled") is True


def test_the_custom_profile_is_the_default_and_the_policy_matches_it(stack_run):
    profile = stack_run.one(CUSTOM_PROFILE)
    assert stack_run.of_type(PREDEFINED) == []
    assert stack_run.outputs["dlpProfileIds"] == [f"{profile.name}-id"]
    traffic = stack_run.one(GATEWAY).input("traffic")
    assert traffic.startswith(f'any(dlp.profiles[*] in {{"{profile.name}-id"}}) and http.request.host in')


def test_predefined_profiles_replace_the_custom_one_with_the_workers_classes_on(choices_run):
    assert choices_run.of_type(CUSTOM_PROFILE) == [] and choices_run.of_type(CUSTOM_ENTRY) == []
    configured = {r.input("profileId"): r for r in choices_run.of_type(PREDEFINED)}
    assert set(configured) == {FINANCIAL.id, SSN.id}
    assert sorted(configured[FINANCIAL.id].input("enabledEntries")) == sorted(
        entry_id(name)
        for name in ("American Express Card Number", "Mastercard Card Number", "Visa Card Number")
    )
    assert configured[SSN.id].input("enabledEntries") == [entry_id("United States SSN")]
    for resource in configured.values():
        assert resource.input("accountId") == TEST_ACCOUNT_ID
        # Account-wide objects other stacks may use: a destroy leaves them configured.
        assert resource.retain_on_delete and not resource.protect
    lookups = [args for token, args in choices_run.invocations if token == LOOKUP]
    assert sorted(a["profileId"] for a in lookups) == sorted([FINANCIAL.id, SSN.id])
    assert [args for token, args in choices_run.invocations if token == ENTRIES] == [
        {"accountId": TEST_ACCOUNT_ID}
    ]
    traffic = choices_run.one(GATEWAY).input("traffic")
    assert traffic.startswith(f'any(dlp.profiles[*] in {{"{FINANCIAL.id}" "{SSN.id}"}})')
    assert choices_run.outputs["dlpProfileIds"] == [FINANCIAL.id, SSN.id]


def test_a_predefined_profile_under_another_name_stops_the_run(run_program, monkeypatch):
    monkeypatch.setitem(
        mocks.ACCOUNT_PREDEFINED_DLP_PROFILES, SSN.id, ("Something else", ("United States SSN",))
    )
    with pytest.raises(Exception, match=rf"predefined DLP profile {SSN.id} is 'Something else'"):
        run_program("dev", overrides={"steadytext-edge:dlpProfile": "predefined"})


def test_entry_selection_skips_deprecated_entries_and_names_what_exists_when_nothing_fits():
    entries = [
        {"id": "a", "name": "Visa Card Number", "deprecated": True, "profile_id": FINANCIAL.id},
        {"id": "b", "name": "Mastercard Card Number", "profile_id": FINANCIAL.id},
        {"id": "c", "name": "Visa Text", "profile_id": FINANCIAL.id},
        {"id": "d", "name": "Diners Club Card Number", "profile_id": "a-custom-profile"},
        {"id": "x", "name": "Canada Social Insurance Number", "profile_id": SSN.id},
    ]
    assert predefined_entry_ids(FINANCIAL, FINANCIAL.name, entries) == ["b"]
    with pytest.raises(PredefinedProfileError, match="its entries: Canada Social Insurance Number$"):
        predefined_entry_ids(SSN, SSN.name, entries)
