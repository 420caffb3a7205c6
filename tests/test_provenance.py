"""igkd_lib.provenance.commit_of: "-dirty" means the library differs from the commit, not the book's outputs."""
import subprocess

from igkd_lib.provenance import commit_of


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_only_library_changes_make_a_commit_dirty(tmp_path):
    for name, text in {"igkd_lib/x.py": "a = 1\n", "pyproject.toml": "", "notebooks/c.ipynb": "{}\n",
                       "results/paper/runs.csv": "run_key\n"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    clean = commit_of(tmp_path)
    assert len(clean) == 12 and not clean.endswith("-dirty")
    (tmp_path / "notebooks/c.ipynb").write_text('{"executed": true}\n')  # what a book build writes
    (tmp_path / "results/paper/runs.csv").write_text("run_key\nk\n")
    assert commit_of(tmp_path) == clean
    (tmp_path / "igkd_lib/x.py").write_text("a = 2\n")
    assert commit_of(tmp_path) == clean + "-dirty"
    assert commit_of(tmp_path / "igkd_lib" / "missing") == "unknown"
