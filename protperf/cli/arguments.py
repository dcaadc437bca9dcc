"""The command line of a Hydra command, checked before Hydra sees it: one line, exit 2.

Hydra answers a mistyped group option (``trainer=cpu``) or an unquoted non-ASCII value
(``output_dir=émb_ü``) with several lines and exit status 1; these checks name the argument,
what is wrong and what to type instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from protperf.conf import CONF_DIR
from protperf.errors import ConfigError


def _overrides(argv: Sequence[str]) -> Iterator[str]:
    """The ``key=value`` / ``~key`` arguments of ``argv`` (flags and their values left out)."""
    for arg in argv:
        if not arg.startswith("-") and ("=" in arg or arg.startswith("~")):
            yield arg


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str] | None:
    """The options of config group ``group`` (``trainer`` -> ``["ddp", "default", ...]``),
    or None when protperf has no such group (a plain key, or one of Hydra's own groups)."""
    if group.startswith("hydra") or not (conf_dir / group).is_dir():
        return None
    return sorted(path.stem for path in (conf_dir / group).glob("*.yaml"))


def _parse_error(arg: str, reason: str) -> ConfigError:
    key, _, value = arg.partition("=")
    if not value.isascii():
        return ConfigError(f"{arg}: Hydra reads non-ASCII characters only in quoted values: "
                           f"type '{key}=\"{value}\"' (quotes included)")
    return ConfigError(f"{arg}: not a valid override ({reason}); quote a value with special "
                       f"characters: '{key}=\"{value}\"'")


def check_overrides(argv: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Raise :class:`ConfigError` for the first override of ``argv`` that Hydra cannot parse,
    or that picks an option a config group of protperf does not have."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for arg in _overrides(argv):
        try:
            override = parser.parse_override(arg)
        except HydraException as error:
            raise _parse_error(arg, str(error).splitlines()[0]) from None
        options = group_options(override.key_or_group, conf_dir)
        if options is None or override.is_delete():
            continue
        value = override.value()
        choices = getattr(value, "list", [value])  # a sweep (a,b) names several options
        for choice in choices:
            if isinstance(choice, str) and choice != "null" and choice not in options:
                raise ConfigError(
                    f"{arg}: the {override.key_or_group} group has no option {choice!r} "
                    f"(options: {', '.join(options)})")
