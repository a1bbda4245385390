"""The shipped protocols by name: their folder, their names and the default, without the protocol models.

:mod:`osteoplan.planning.protocol` validates protocols with pydantic (its models take tens of milliseconds to
build at import); the command line only needs the names to build its ``--help`` (``osteoplan plan``, ``osteoplan
batch``), so they live here and :mod:`osteoplan.planning.protocol` re-exports them.
"""

from __future__ import annotations

from pathlib import Path

#: Folder of the shipped protocol files (``<name>.toml``).
PROTOCOL_DIR = Path(__file__).with_name("protocols")

#: The protocol used when none is named.
DEFAULT_PROTOCOL = "c2-dens-anterior"


def available_protocols() -> list[str]:
    """Names of the shipped protocols (the ``.toml`` files of :data:`PROTOCOL_DIR`, without suffix), sorted."""
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.toml"))
