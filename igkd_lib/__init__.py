"""igkd_lib: the helper library of the igkd reproducibility book.

Knowledge Distillation with Integrated Gradients (Hernandez, Chang, Nordling; arXiv 2503.13008):
data, models, attribution, augmentation, distillation, training, experiments, benchmarks, plots
and interactive views. Every function takes one :class:`~igkd_lib.config.Config`.
"""
from igkd_lib.config import PROFILES, Config, ConfigError, make_config

__all__ = ["Config", "ConfigError", "PROFILES", "make_config", "__version__"]
__version__ = "0.1.0"
