"""rhaii-tui: guided deployment of vLLM on GKE TPU v6e with cache-aware routing."""

__version__ = "0.1.0"
