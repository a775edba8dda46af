"""Base for dynamic providers that put one versioned thing somewhere (a schema into a database, a
file into a bucket): applied on create, re-applied only when its digest changes, replaced (applied
afresh) when where it goes changes."""

from __future__ import annotations

from typing import Any, ClassVar

from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult


class DigestProvider(ResourceProvider):
    # Inputs that say where the thing goes; a change means a new resource.
    location_keys: ClassVar[tuple[str, ...]]
    # The input holding the thing's digest; a change means apply again.
    digest_key: ClassVar[str]
    # Further inputs the stack state keeps (never credentials: Pulumi stores state outputs as given).
    extra_state_keys: ClassVar[tuple[str, ...]] = ()

    def apply(self, props: dict[str, Any]) -> None:
        raise NotImplementedError

    def resource_id(self, props: dict[str, Any]) -> str:
        raise NotImplementedError

    def _state(self, props: dict[str, Any]) -> dict[str, Any]:
        return {key: props[key] for key in (*self.location_keys, self.digest_key, *self.extra_state_keys)}

    def create(self, props: dict[str, Any]) -> CreateResult:
        self.apply(props)
        return CreateResult(id_=self.resource_id(props), outs=self._state(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [key for key in self.location_keys if olds.get(key) != news.get(key)]
        changed = bool(replaces) or olds.get(self.digest_key) != news.get(self.digest_key)
        return DiffResult(changes=changed, replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        self.apply(news)
        return UpdateResult(outs=self._state(news))

    # No delete: what was applied lives on with its container (see each provider's docstring).
