"""What Gateway's DLP block policy matches, for either `dlpProfile` choice.

- `custom`: a custom profile with one entry per pattern of `dlp-patterns.json` (the Worker's own
  patterns). Custom profiles need Cloudflare's DLP add-on (Zero Trust Enterprise).
- `predefined`: Cloudflare's predefined "Financial Information" and "Social Security, Insurance, Tax,
  and Identifier Numbers" profiles, the two that Free and Pay-as-you-go Zero Trust plans get
  (developers.cloudflare.com/cloudflare-one/data-loss-prevention/). A predefined profile only matches
  through the entries that are turned on, so the program turns on the ones that mirror the Worker's
  classes: the card-number entries and the US SSN entry.

Predefined profiles have the same id in every account (the API reference and the Terraform provider's
tests use the Financial Information id verbatim); the program still looks each one up by id at preview
and stops with a clear message when the account has no such profile or it has another name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PredefinedProfile:
    id: str
    name: str
    # Which of the profile's detection entries to turn on (by entry name), and what they are.
    entries: re.Pattern[str]
    entries_described: str


PREDEFINED_PROFILES = (
    PredefinedProfile(
        id="e91a2360-da51-4fdf-9711-bcdecd462614",
        name="Financial Information",
        # "Visa Card Number", "Mastercard Card Number", …; not "CVV Card Number (labeled)" nor the
        # "… Text" entries, which match card-brand words rather than numbers.
        entries=re.compile(r".* Card Number"),
        entries_described="the payment-card number entries",
    ),
    PredefinedProfile(
        id="d658f520-6ecb-4a34-a725-ba37243c2d28",
        name="Social Security, Insurance, Tax, and Identifier Numbers",
        entries=re.compile(r"United States SSN(?! Text).*"),
        entries_described="the United States SSN entry",
    ),
)


class PredefinedProfileError(ValueError):
    pass


def _field(item: Any, name: str) -> Any:
    """A field of an invoke result item (typed output object, or a plain dict under some callers)."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def predefined_entry_ids(
    profile: PredefinedProfile, found_name: str | None, entries: Iterable[Any] | None
) -> list[str]:
    """The ids of the entries to turn on in `profile`, given the name the account gives its id and the
    account's predefined entries (of every profile)."""
    if found_name != profile.name:
        raise PredefinedProfileError(
            f"the Cloudflare account's predefined DLP profile {profile.id} is {found_name!r}, not "
            f"{profile.name!r}: set steadytext-edge:dlpProfile to custom, or report the new id"
        )
    entries = [entry for entry in entries or [] if _field(entry, "profile_id") == profile.id]
    chosen = sorted(
        _field(entry, "id")
        for entry in entries
        if profile.entries.fullmatch(_field(entry, "name") or "") and not _field(entry, "deprecated")
    )
    if not chosen:
        names = ", ".join(sorted(str(_field(entry, "name")) for entry in entries)) or "none"
        raise PredefinedProfileError(
            f"predefined DLP profile {profile.name!r} has no entry matching {profile.entries.pattern!r} "
            f"({profile.entries_described}); its entries: {names}"
        )
    return chosen


def gateway_dlp_traffic(profile_ids: Sequence[str], hostnames: Sequence[str]) -> str:
    """Gateway wirefilter: an HTTP request to one of our hostnames whose body matches a profile."""
    profiles = " ".join(f'"{profile_id}"' for profile_id in profile_ids)
    hosts = " ".join(f'"{host}"' for host in hostnames)
    return f"any(dlp.profiles[*] in {{{profiles}}}) and http.request.host in {{{hosts}}}"
