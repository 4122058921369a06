"""Error hierarchy. Every message says what went wrong *and* how to fix it."""

from __future__ import annotations


class SorterError(Exception):
    """Base of all errors raised on purpose by the sorter."""


class ConfigError(SorterError):
    """A configuration value is invalid or physically impossible.

    Attributes:
        problems: one human-readable line per problem (key path, value, fix).
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class CalibrationError(SorterError):
    """A calibration is missing, invalid, or could not be computed."""


class DeviceNotConnectedError(SorterError):
    """A camera, controller or PLC cannot be reached."""


class StaleFrameError(SorterError):
    """No fresh frame arrived in time."""


class MissingDependencyError(SorterError):
    """An optional heavy dependency is not installed.

    The message names the extra to install, e.g. ``pip install 'sorter[train]'``.
    """

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{module}', which is not installed. "
            f"Install it with: pip install 'sorter[{extra}]'"
        )
        self.module = module
        self.extra = extra
