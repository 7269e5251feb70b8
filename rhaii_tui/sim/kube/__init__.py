"""The emulated Kubernetes API of a simulated cluster (see server.py)."""

from .faults import Faults
from .server import KubeApiServer

__all__ = ["Faults", "KubeApiServer"]
