"""Networks by name: MLPs now; CNNs and towers in later stages."""

from hepdl.models.network import Network, network_spec, probabilities
from hepdl.models.registry import create_model, list_models, register_model

__all__ = ["Network", "create_model", "list_models", "network_spec", "probabilities",
           "register_model"]
