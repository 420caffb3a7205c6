"""Every cache key (runs, maps, teacher) is what it was: a refactor that changes one recomputes cached work.

``tests/data/cache_keys.json`` is ``python tools/cache_keys.py``'s output; regenerate it only for a deliberate
change of what a key covers (and bump the matching version constant).
"""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cache_keys():
    spec = importlib.util.spec_from_file_location("cache_keys", ROOT / "tools" / "cache_keys.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cache_keys()


def test_every_cache_key_is_unchanged():
    expected = json.loads((ROOT / "tests" / "data" / "cache_keys.json").read_text())
    keys = _cache_keys()
    changed = sorted(name for name in expected if keys.get(name) != expected[name])
    assert not changed, f"{len(changed)} cache keys changed, e.g. {changed[:3]}"
    assert set(keys) == set(expected)
