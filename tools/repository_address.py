"""The repository's address is declared once, in ``pyproject.toml`` (``[project.urls] Repository``); this copies it
to the places that cannot read it: the site's ``_config.yml``, ``CITATION.cff``, the software entry of
``book/references.md`` and every page's Colab install cell (it runs before igkd_lib is installed).

    python tools/repository_address.py            # lists the places that differ from the declaration; exit 1 if any
    python tools/repository_address.py --write    # writes the declared address into each of them
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
_URL = r"https://github\.com/[\w.-]+/[\w.-]+?"
# file (glob) -> pattern whose group "url" holds the address
PLACES = {
    "_config.yml": re.compile(rf"(?m)^repository:\n  url: (?P<url>{_URL})$"),
    "CITATION.cff": re.compile(rf'(?m)^repository-code: "(?P<url>{_URL})"$'),
    "book/references.md": re.compile(rf"url\s*= \{{(?P<url>{_URL})\}}"),
    "notebooks/*.ipynb": re.compile(rf"igkd @ git\+(?P<url>{_URL})\\?\""),
    "book/*.ipynb": re.compile(rf"igkd @ git\+(?P<url>{_URL})\\?\""),
}


def declared() -> str:
    """The address in pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def differences(root: Path = ROOT) -> list[str]:
    """One line per place that does not hold the declared address (a place without any address included)."""
    url, lines = declared(), []
    for pattern, regex in PLACES.items():
        for path in sorted(root.glob(pattern)):
            found = [m.group("url") for m in regex.finditer(path.read_text())]
            if not found:
                lines.append(f"{path.relative_to(root)}: no repository address")
            lines += [f"{path.relative_to(root)}: {f} (declared: {url})" for f in found if f != url]
    return lines


def write(root: Path = ROOT) -> None:
    """Put the declared address into every place."""
    url = declared()
    for pattern, regex in PLACES.items():
        for path in sorted(root.glob(pattern)):
            text = path.read_text()
            new = regex.sub(lambda m: m.group(0).replace(m.group("url"), url), text)
            if new != text:
                path.write_text(new)


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write()
    problems = differences()
    print("\n".join(problems) or f"every place holds {declared()}")
    sys.exit(1 if problems else 0)
