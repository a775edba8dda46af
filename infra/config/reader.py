"""Typed readers over `pulumi.Config`.

Every missing or malformed value becomes one `ConfigError` that names the full key
(`steadytext-edge:originHostname`) and shows a `pulumi config set` line with an example value,
so a stack fails before any resource is declared and the operator knows what to type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TypeVar

import pulumi

T = TypeVar("T")

HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")
CLOUDFLARE_ID = re.compile(r"^[0-9a-f]{32}$")


class ConfigError(pulumi.RunError):
    """A stack config value is missing or invalid. `pulumi.RunError` makes Pulumi print the message
    without a Python traceback."""

    def __init__(
        self,
        key: str,
        problem: str,
        example: str,
        secret: bool = False,
        list_item: bool = False,
        command: str | None = None,
    ):
        self.key = key
        # A list item is set through its path (`--path 'ns:key[0]' value`), not the key plus a path.
        target = f"--path '{key}[0]'" if list_item else key
        # `command`: the fix is another command than setting this key (e.g. removing a retired key).
        command = command or f"pulumi config set{' --secret' if secret else ''} {target} {example}"
        super().__init__(f"config {key}: {problem}; for example: {command}")


class ConfigReader:
    """Reads one config namespace (the project's by default, `cloudflare`, `aws`, …)."""

    def __init__(self, namespace: str | None = None):
        self._config = pulumi.Config(namespace)
        self.namespace = self._config.name

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def _raw(self, name: str) -> str | None:
        value = self._config.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def refuse_retired(self, name: str, why: str, fix: str) -> None:
        """A key the program no longer reads, which a stack file from an older tree may still set: stop
        with why and the command that fixes the stack file, rather than ignore it silently."""
        if self._raw(name) is not None:
            raise ConfigError(self.key(name), f"is retired: {why}", "", command=fix)

    def _missing(self, name: str, example: str) -> ConfigError:
        return ConfigError(self.key(name), "is required but not set", example)

    def string(
        self, name: str, *, example: str, pattern: re.Pattern[str] | None = None, shape: str = ""
    ) -> str:
        """A required string; `pattern` (described by `shape`) must match the whole value."""
        value = self._raw(name)
        if value is None:
            raise self._missing(name, example)
        if pattern is not None and not pattern.fullmatch(value):
            raise ConfigError(self.key(name), f"must be {shape or pattern.pattern}, got {value!r}", example)
        return value

    def optional_string(
        self, name: str, *, example: str, pattern: re.Pattern[str] | None = None, shape: str = ""
    ) -> str | None:
        if self._raw(name) is None:
            return None
        return self.string(name, example=example, pattern=pattern, shape=shape)

    def hostname(self, name: str, *, example: str) -> str:
        return self.string(name, example=example, pattern=HOSTNAME, shape="a lower-case DNS hostname")

    def cloudflare_id(self, name: str, *, what: str) -> str:
        return self.string(
            name,
            example="0123456789abcdef0123456789abcdef",
            pattern=CLOUDFLARE_ID,
            shape=f"the 32-hex-digit {what} from the Cloudflare dashboard",
        )

    def integer(self, name: str, *, example: int, minimum: int, maximum: int) -> int:
        value = self._raw(name)
        if value is None:
            raise self._missing(name, str(example))
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or not minimum <= number <= maximum:
            raise ConfigError(
                self.key(name), f"must be an integer from {minimum} to {maximum}, got {value!r}", str(example)
            )
        return number

    def boolean(self, name: str) -> bool:
        value = self._raw(name)
        if value is None:
            raise self._missing(name, "true")
        if value.lower() not in ("true", "false"):
            raise ConfigError(self.key(name), f"must be true or false, got {value!r}", "true")
        return value.lower() == "true"

    def choice(self, name: str, choices: Sequence[T]) -> T:
        """One of `choices` (compared as strings, returned as the matching choice)."""
        value = self._raw(name)
        by_text = {str(choice): choice for choice in choices}
        if value is None:
            raise self._missing(name, str(choices[0]))
        if value not in by_text:
            raise ConfigError(
                self.key(name), f"must be one of {', '.join(by_text)}, got {value!r}", str(choices[0])
            )
        return by_text[value]

    def string_list(
        self,
        name: str,
        *,
        example: str,
        pattern: re.Pattern[str] | None = None,
        shape: str = "",
        min_items: int = 0,
    ) -> tuple[str, ...]:
        """A YAML list of strings in the stack file (the CLI hands it over as JSON)."""
        value = self._raw(name)
        if value is None:
            if min_items:
                raise ConfigError(
                    self.key(name), f"needs at least {min_items} item(s)", example, list_item=True
                )
            return ()
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            items = None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ConfigError(
                self.key(name), f"must be a list of strings, got {value!r}", example, list_item=True
            )
        if len(items) < min_items:
            raise ConfigError(self.key(name), f"needs at least {min_items} item(s)", example, list_item=True)
        for item in items:
            if pattern is not None and not pattern.fullmatch(item):
                raise ConfigError(
                    self.key(name),
                    f"items must be {shape or pattern.pattern}, got {item!r}",
                    example,
                    list_item=True,
                )
        return tuple(items)

    def secret(self, name: str, *, example: str) -> pulumi.Output[str]:
        """A required secret; it only ever exists as a secret `Output`. The plain value is looked at
        only to refuse an empty one (it would deploy a Worker or runtime with a blank credential)."""
        if self._raw(name) is None:
            raise ConfigError(self.key(name), "is required but not set", example, secret=True)
        return self._config.require_secret(name)
