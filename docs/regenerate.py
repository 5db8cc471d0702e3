"""Rewrite what the docs show from what the code does: outputs, and the generated reference pages.

Usage, from the repository root::

    python docs/regenerate.py                 # rewrite every output and generated page
    python docs/regenerate.py README.md       # only these pages' outputs
    python docs/regenerate.py --check         # rewrite nothing; exit 1 naming what is stale

Each page is played in a scratch project of its own (see ``docs/snippets.py``):
the ```text block of every ``<!-- output: COMMAND -->`` region becomes what
``COMMAND`` prints at that point. The option and CLI reference pages are
written from ``pytest_crystallize/pytest_plugin/options.py`` and the
``crystallize`` command's help (``docs/reference_pages.py``). The suite runs
the same comparison (``tests/test_docs_snippets.py``), tolerating only run
times, run ids and absolute paths.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_pages  # a sibling script, found through the path set above
import snippets


def played(path: Path) -> tuple[snippets.Page, dict[snippets.Block, str]]:
    """Play ``path`` in a scratch project; return the page and its regions' fresh outputs."""
    page = snippets.parse(path)
    with tempfile.TemporaryDirectory(prefix="crystallize-docs-") as scratch:
        player = snippets.Player(Path(scratch))
        player.play(page)
        return page, {block: snippets.relative(text, Path(scratch)) for block, text in player.outputs.items()}


def rewritten(path: Path, outputs: dict[snippets.Block, str]) -> str:
    """The page's text with each output region's block replaced by its fresh output."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for block in sorted(outputs, key=lambda b: b.line, reverse=True):
        lines[block.line : block.end - 1] = outputs[block].rstrip("\n").splitlines()
    return "\n".join(lines) + "\n"


def stale_outputs(path: Path) -> list[str]:
    """Output regions of ``path`` whose shown text differs from a fresh run, beyond times, ids and paths."""
    page, outputs = played(path)
    problems = []
    for block, fresh in outputs.items():
        if snippets.normalized(block.text) != snippets.normalized(fresh):
            problems.append(f"{page.name}:{block.line}: the output shown is not what the command prints now")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to regenerate (default: all)")
    parser.add_argument("--check", action="store_true", help="rewrite nothing; exit 1 when something is stale")
    args = parser.parse_args(argv)
    chosen = [p.resolve() for p in args.pages] or [p for p in snippets.pages() if "<!-- output:" in p.read_text()]
    problems: list[str] = []
    for path, text in reference_pages.generated().items():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                problems.append(f"{path.relative_to(snippets.ROOT)} is not what docs/reference_pages.py writes")
        else:
            path.write_text(text, encoding="utf-8")
    for path in chosen:
        if args.check:
            problems += stale_outputs(path)
        else:
            _, outputs = played(path)
            path.write_text(rewritten(path, outputs), encoding="utf-8")
            print(f"regenerated {len(outputs)} output(s) of {path.relative_to(snippets.ROOT)}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("run: python docs/regenerate.py", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
