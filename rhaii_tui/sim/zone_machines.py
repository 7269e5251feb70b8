"""Which machine types a zone offers (Compute `machineTypes.list` per zone is the live answer).

Machine series are not offered everywhere: N1, the guide's default pool (n1-standard-4), is missing
from regions opened in recent years (e.g. europe-west8: "Machine type with name 'n1-standard-1' does
not exist in zone 'europe-west8-a'"). Whether a v6e zone lacks it could not be confirmed, so every
zone offers every series here unless the scenario removes one (`machine_series_absent`, entries
"ZONE:SERIES"); TPU v6e machine types exist only in the v6e zones.
"""

from __future__ import annotations

from typing import Any

from ..config import V6E_ZONES
from .cluster import MACHINE_TYPES


def absent_series(zone: str, scenario: Any = None) -> set[str]:
    out: set[str] = set()
    for entry in getattr(scenario, "machine_series_absent", ()) or ():
        where, _, series = str(entry).partition(":")
        if where == zone and series:
            out.add(series)
    return out


def zone_offers(zone: str, name: str, scenario: Any = None) -> bool:
    mt = MACHINE_TYPES.get(name)
    if mt is None:
        return False
    if mt.is_tpu and zone not in V6E_ZONES:
        return False
    return mt.family not in absent_series(zone, scenario)


def zone_machine_types(zone: str, scenario: Any = None) -> list[str]:
    return [m for m in MACHINE_TYPES if zone_offers(zone, m, scenario)]
