"""The optional packages of reports (the ``report`` extra: matplotlib, pyarrow), imported only when used."""

from __future__ import annotations

import importlib
from typing import Any

from sorter.errors import SorterError

EXTRA = "report"


class ReportExtraMissingError(SorterError):
    """A package of the ``report`` extra is not installed."""


def require(module: str, what: str) -> Any:
    """Import ``module`` (a package of the ``report`` extra), or say what to install.

    Raises:
        ReportExtraMissingError: the package is missing; the message names the extra and the package.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise ReportExtraMissingError(
            f"{what} needs the Python package '{top}', which is not installed: pip install 'sorter[{EXTRA}]' "
            f"(or pip install {top})"
        ) from None
