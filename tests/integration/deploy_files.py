"""The operator's configuration files in deploy/, filled in for a test run.

Templates mark what a site must choose with @NAME@ placeholders; a test fills in every one of them
(and nothing else), so the servers run exactly the files an operator installs.
"""

from __future__ import annotations

import re
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def render(relative: str, values: dict[str, object]) -> str:
    """deploy/<relative> with each @NAME@ replaced by values[NAME]; every placeholder must be given."""
    template = (DEPLOY / relative).read_text()
    wanted = set(PLACEHOLDER.findall(template))
    missing, unknown = wanted - values.keys(), values.keys() - wanted
    if missing or unknown:
        raise AssertionError(f"deploy/{relative}: placeholders missing {sorted(missing)}, unknown {sorted(unknown)}")
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)


def write(relative: str, values: dict[str, object], target: Path, mode: int = 0o600) -> Path:
    target.write_text(render(relative, values))
    target.chmod(mode)
    return target
