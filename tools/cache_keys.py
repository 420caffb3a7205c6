"""Print every cache key the library derives, as JSON: run keys, maps keys and the teacher's training key.

    python tools/cache_keys.py > keys.json

Profiles x variants (the fault ablation, the controls, the teacher signals, the map sources, the official
code) x methods x seeds x devices (CPU, CUDA) x both map precisions. ``tests/test_cache_keys.py`` compares
the output with the committed ``tests/data/cache_keys.json``: a refactor that changes a key (and so
recomputes a cached run, map or teacher) fails there. Regenerate the file only for a deliberate change.
"""
from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import torch

from igkd_lib.attribution.maps import maps_key
from igkd_lib.config import MAP_SOURCES, METHODS, PROFILES, TEACHER_LOGITS, make_config
from igkd_lib.evidence.experiments import run_key
from igkd_lib.storage import stable_hash
from igkd_lib.training.faults import CONTROLS, OFFICIAL_CODE, fault_ablation_variants
from igkd_lib.training.teacher import recipe_from_config, teacher_cache_key


def _variants() -> dict[str, dict]:
    variants = {"default": {}, "official_code": OFFICIAL_CODE}
    variants.update({f"ablation{i}": v for i, v in enumerate(fault_ablation_variants(full=True))})
    variants.update({f"control_{name}": v for name, v in CONTROLS.items()})
    variants.update({f"logits_{s}": {"teacher_logits": s} for s in TEACHER_LOGITS})
    variants.update({f"source_{s}": {"map_source": s} for s in MAP_SOURCES})
    return variants


def _split(n: int, source: str = "offline") -> SimpleNamespace:
    return SimpleNamespace(indices=torch.arange(n), source=source)


def cache_keys() -> dict[str, str]:
    """Every key, by a readable name."""
    keys = {}
    train, test = _split(512), _split(200)
    for profile in PROFILES:
        for vname, overrides in _variants().items():
            config = make_config(profile, **overrides)
            for device in ("cpu", "cuda"):
                dev = torch.device(device)
                for method in METHODS:
                    for seed in (0, 7):
                        for trainer in ("single", "wide"):
                            name = f"run/{profile}/{vname}/{device}/{method}/{seed}/{trainer}"
                            keys[name] = run_key(config, method, seed, "t" * 64, train, test, trainer=trainer,
                                                 device=dev)
            for precision in ("fp32", "bf16"):
                key = maps_key(config, "t" * 64, "offline", torch.arange(512), precision)
                keys[f"maps/{profile}/{vname}/{precision}"] = stable_hash(key)
        recipe = recipe_from_config(make_config(profile))
        keys[f"teacher/{profile}"] = teacher_cache_key(recipe, train)
    return keys


if __name__ == "__main__":
    json.dump(cache_keys(), sys.stdout, indent=1, sort_keys=True)
    print()
