"""Where the configuration comes from: project paths, the environment name, ``${NAME}`` values.

Nothing here runs at import; each function reads the process environment when called.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[3]  # pipelines/lake/config/environment.py
ENVIRONMENTS = ("local", "emulated", "prod")
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


class ConfigError(ValueError):
    """The configuration is wrong or incomplete; the message says what and where."""


DEFAULT_START_DATE = dt.date(2026, 9, 1)


def config_path() -> Path:
    """Path of the configuration file (``LAKEHOUSE_CONFIG`` overrides the project's own)."""
    return Path(os.environ.get("LAKEHOUSE_CONFIG") or PROJECT_ROOT / "lakehouse.yaml")


def lake_home() -> Path:
    """Folder that relative location roots and local state are resolved against."""
    home = Path(os.environ.get("LAKEHOUSE_HOME") or PROJECT_ROOT).resolve()
    if home.exists() and not home.is_dir():
        raise ConfigError(f"LAKEHOUSE_HOME={home} is a file, not a folder")
    return home


def read_config_file(path: str) -> dict[str, Any]:
    """The configuration file as a mapping; a one-line error naming the file if it is not one."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"configuration {path} is a folder, not a YAML file (LAKEHOUSE_CONFIG)")
    try:
        data = yaml.safe_load(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"configuration file {path} is not valid YAML{at}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise ConfigError(f"configuration file {path} is {kind}; see lakehouse.yaml for the shape")
    return data


def current_environment() -> str:
    """The environment named by ``LAKEHOUSE_ENV`` (default ``local``), validated."""
    env = os.environ.get("LAKEHOUSE_ENV", "local")
    if env not in ENVIRONMENTS:
        raise ConfigError(f"LAKEHOUSE_ENV={env!r} is not one of {', '.join(ENVIRONMENTS)}")
    return env


def resolve_placeholders(value: str, where: str, first: Mapping[str, str] | None = None) -> str:
    """Replace ``${NAME}`` with ``first[NAME]``, else the environment variable NAME.

    Fails naming the variable when neither has it.
    """

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if first and name in first:
            return first[name]
        if name not in os.environ:
            raise ConfigError(f"{where} needs environment variable {name}, which is not set")
        return os.environ[name]

    return _PLACEHOLDER.sub(sub, value)
