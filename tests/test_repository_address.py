"""tools/repository_address.py: the repository's address is declared once (pyproject.toml) and every copy agrees."""
import importlib.util
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("repository_address", ROOT / "tools" / "repository_address.py")
address = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(address)


def test_every_place_holds_the_declared_address():
    assert address.declared().startswith("https://github.com/")
    assert address.differences() == []


def test_a_stale_copy_is_found_and_rewritten(tmp_path):
    for name in ("_config.yml", "CITATION.cff", "book/references.md", "notebooks/01_integrated_gradients.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    chapter = tmp_path / "notebooks" / "01_integrated_gradients.ipynb"
    chapter.write_text(chapter.read_text().replace(address.declared(), "https://github.com/someone/else"))
    assert address.differences(tmp_path) == [
        f"notebooks/01_integrated_gradients.ipynb: https://github.com/someone/else (declared: {address.declared()})"]
    address.write(tmp_path)
    assert address.differences(tmp_path) == []
