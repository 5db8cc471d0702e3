"""Every code block of the documentation, as something that runs: read a page, play it in a project.

A page is played from top to bottom in a scratch project directory of its
own, the way a reader follows it. What a block does depends on its language
and on the HTML comment right above it (blank lines may come between):

``<!-- file: PATH -->``
    the block is the content of ``PATH`` in the project: written there.
``<!-- patch: PATH -->`` above a ```diff block
    a change to ``PATH``: the ``-`` and context lines are found in the file
    (exactly once) and replaced by the ``+`` and context lines.
``<!-- exit: N -->`` above a shell block
    its commands end with exit status ``N`` (a failing hypothesis, a gate).
``<!-- fragment: WHY -->``
    a deliberate fragment: not run. ``tests/test_docs_snippets.py`` keeps
    these few.
``<!-- cwd: repository -->`` (anywhere on a page)
    its commands run at the repository root, as on the README by default
    (scripts under ``docs/`` that print what the page shows).
``<!-- cwd: project -->``
    on the README: its commands run in its own scratch project, where its
    ``file`` blocks are.
``<!-- continues: PAGE -->`` (anywhere on a page)
    start from where ``PAGE`` (a path relative to this page) leaves its
    project: its files, patches and ``rm`` commands, not its runs.
``<!-- output: COMMAND -->``, a ```text block, ``<!-- /output -->``
    what ``COMMAND`` prints, run at that point of the page; written by
    ``docs/regenerate.py`` and checked current by the suite.

Without a marker: ```python blocks that define an ``experiment_*`` function
are written to a test file and run with ``pytest --crystallize`` (which must
pass). Files the pages write are named ``experiment_*.py`` rather than
``test_*.py`` where they can: the suite runs pages in-process, beside its own
``test_*`` modules, and one module name cannot be two files. Other
```python blocks run as scripts; ```bash blocks run each command (setting
up a virtual environment and installing packages is skipped: the suite's
environment is that one); ```toml and ```yaml blocks must parse.
A ```yaml file under ``.github/workflows/`` is played like GitHub Actions
would: for a push, then for a pull request, every ``run:`` step whose
``if:`` holds. ```text blocks outside an output region are illustrations.

Commands run in the page's project directory, except on the README, which is
read from a clone, and on pages marked ``cwd: repository``: their commands
and outputs run at the repository root. ``NAME=value command`` sets the
command's environment, as in a shell.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"

_FENCE = re.compile(r"^(?P<fence>```+)(?P<lang>[\w+-]*)[^\n]*$")
_MARKER = re.compile(r"^<!--\s*(?P<key>[a-z/]+)(?::\s*(?P<value>.*?))?\s*-->$")
#: Commands a reader runs to set up an environment: the suite already runs in one.
_SETUP = re.compile(r"^(python3? -m venv|\. \S*activate|source \S*activate|pip install|python3? -m pip install)\b")
#: The suite's environment has test-only pytest plugins a reader lacks; they would change the outputs.
READER_PLUGINS_ONLY = "-p no:asyncio"
SHELLS = ("bash", "console", "shell", "sh")
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")
#: Blocks that are not code: shown, never run.
ILLUSTRATIONS = ("text", "")


class SnippetError(AssertionError):
    """A block of the docs did not do what the page says; the message names the page and line."""


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: its language, text, the marker above it and where it starts (1-based line)."""

    lang: str
    text: str
    line: int
    end: int
    marker: str = ""
    value: str = ""


@dataclass(frozen=True, slots=True)
class Output:
    """An output region: the command, the ```text block that shows its output, and its lines."""

    command: str
    block: Block


@dataclass(frozen=True, slots=True)
class Page:
    """A page split into what is played, in order: blocks and output regions."""

    path: Path
    items: tuple[Block | Output, ...]
    continues: tuple[Path, ...] = ()
    #: Commands run at the repository root (the README, pages marked ``cwd: repository``).
    in_repository: bool = False

    @property
    def name(self) -> str:
        """The page's path relative to the repository (absolute for a page elsewhere)."""
        return self.path.relative_to(ROOT).as_posix() if self.path.is_relative_to(ROOT) else str(self.path)


def pages() -> list[Path]:
    """The README and every Markdown page of the docs, in a stable order."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def parse(path: Path) -> Page:
    """Split ``path`` into blocks and output regions; raise SnippetError on an unclosed block or region."""
    lines = path.read_text(encoding="utf-8").splitlines()
    items: list[Block | Output] = []
    continues: list[Path] = []
    in_repository = path == README
    marker: tuple[str, str] = ("", "")
    region: str | None = None
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        found = _MARKER.match(stripped)
        fence = _FENCE.match(stripped)
        if found:
            key, value = found["key"], (found["value"] or "").strip()
            if key == "continues":
                continues.append((path.parent / value).resolve())
            elif key == "cwd":
                if value not in ("repository", "project"):
                    raise SnippetError(f"{path}:{i + 1}: <!-- cwd: {value} -->: 'repository' or 'project'")
                in_repository = value == "repository"
            elif key == "output":
                region = value
            elif key == "/output":
                if region is not None:
                    raise SnippetError(f"{path}:{i + 1}: <!-- /output --> without its ```text block")
            else:
                marker = (key, value)
            i += 1
        elif fence:
            block, i = _read_block(path, lines, i, fence, marker)
            marker = ("", "")
            if region is not None:
                if block.lang != "text":
                    raise SnippetError(f"{path}:{block.line}: an output region holds a ```text block")
                items.append(Output(region, block))
                region = None
            else:
                items.append(block)
        else:
            if stripped:
                marker = ("", "")
            i += 1
    if region is not None:
        raise SnippetError(f"{path}: <!-- output: {region} --> is not followed by a ```text block")
    return Page(path, tuple(items), tuple(continues), in_repository)


def _read_block(
    path: Path, lines: list[str], start: int, fence: re.Match[str], marker: tuple[str, str]
) -> tuple[Block, int]:
    indent = len(lines[start]) - len(lines[start].lstrip())
    closing = fence["fence"]
    for j in range(start + 1, len(lines)):
        if lines[j].strip() == closing:
            body = [line[indent:] if not line[:indent].strip() else line.lstrip() for line in lines[start + 1 : j]]
            text = "\n".join(body) + "\n" if body else ""
            return Block(fence["lang"], text, start + 1, j + 1, *marker), j + 1
    raise SnippetError(f"{path}:{start + 1}: the code block is never closed")


# -- playing a page ----------------------------------------------------------------


@dataclass
class Player:
    """Plays pages in one project directory; collects the outputs of output regions.

    ``outputs`` maps each region (by its block) to what its command printed,
    raw; :func:`normalized` makes two runs of it comparable.
    """

    project: Path
    #: Runs a plain command (argv, cwd, env) -> (status, output) in this process, or returns None to leave
    #: it to a shell; None: every command runs in a shell.
    in_process: Callable[[list[str], Path, dict[str, str]], tuple[int, str] | None] | None = None
    outputs: dict[Block, str] = field(default_factory=dict)
    counter: int = 0
    last_output: str = ""

    def play(self, page: Page) -> None:
        """Run every block of ``page`` in order; raise SnippetError at the first that does not do what it says."""
        for earlier in page.continues:
            self.replay_files(parse(earlier))
        for item in page.items:
            if isinstance(item, Output):
                self.outputs[item.block] = self.output(page, item.command)
            else:
                self.block(page, item)

    def replay_files(self, page: Page) -> None:
        """Make the project hold what ``page`` leaves in it: its files, patches and removals, nothing run."""
        for earlier in page.continues:
            self.replay_files(parse(earlier))
        for item in page.items:
            if isinstance(item, Block) and item.marker in ("file", "patch"):
                self.block(page, item)
            elif isinstance(item, Block) and item.lang in SHELLS and item.marker != "fragment":
                for command in commands(item.text):
                    if command.split()[:1] == ["rm"]:
                        self.shell(page, item, command)

    def block(self, page: Page, block: Block) -> None:
        """Do what one block says (see the module docstring)."""
        where = f"{page.name}:{block.line}"
        if block.marker == "fragment":
            return
        if block.marker == "file":
            target = self.project / block.value
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text, encoding="utf-8")
            if block.value.startswith(".github/workflows/"):
                self.workflow(page, block)
            return
        if block.marker == "patch":
            patch(self.project / block.value, block.text, where)
            return
        if block.marker not in ("", "exit"):
            raise SnippetError(f"{where}: unknown marker {block.marker!r} (see docs/snippets.py)")
        if block.lang == "python":
            self.python(page, block)
        elif block.lang in SHELLS:
            status = int(block.value) if block.marker == "exit" else 0
            last = 0
            for command in commands(block.text):  # as under `set -e`: the first failing command ends the block
                last = self.shell(page, block, command)
                if last != 0:
                    break
            if last != status:
                msg = f"{where}: the block ended with exit status {last}, the page says {status}:\n{self.last_output}"
                raise SnippetError(msg)
        elif block.lang == "toml":
            tomllib.loads(block.text)
        elif block.lang == "yaml":
            import yaml

            yaml.safe_load(block.text)
        elif block.lang not in ILLUSTRATIONS:
            raise SnippetError(f"{where}: a ```{block.lang} block needs a marker: file, patch or fragment")

    def python(self, page: Page, block: Block) -> None:
        self.counter += 1
        if re.search(r"^(async )?def experiment_", block.text, re.MULTILINE):
            name = f"experiment_docs_block{self.counter}.py"  # not test_*.py: the suite's own modules have those names
            command = f"pytest --crystallize -p no:cacheprovider {name}"
        else:
            name = f"block{self.counter}.py"
            command = f"python {name}"
        (self.project / name).write_text(block.text, encoding="utf-8")
        status, output = self.execute(command, self.project)
        if status != 0:
            raise SnippetError(f"{page.name}:{block.line}: {command} failed:\n{output}")

    def shell(self, page: Page, block: Block, command: str) -> int:
        """Run one command of a shell block; setting up an environment is skipped (status 0)."""
        if _SETUP.match(command):
            return 0
        status, output = self.execute(command, self.cwd(page))
        self.last_output = output
        return status

    def output(self, page: Page, command: str) -> str:
        """What ``command`` prints at this point of the page, pytest's session header left out."""
        _, output = self.execute(command, self.cwd(page))
        if "Traceback (most recent call last)" in output:  # a failing experiment reports; a crash is a bug of the page
            raise SnippetError(f"{page.name}: {command} crashed:\n{output}")
        return f"$ {command}\n" + without_header(output)

    def execute(self, command: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run one shell command; a plain one (no pipes, redirections, lists) through ``in_process`` if it takes it."""
        tokens = shlex.shlex(command, punctuation_chars=True)
        plain = not any(token and set(token) <= set("();<>|&") for token in tokens)
        if self.in_process is not None and plain:
            argv, assigned = shlex.split(command), {}
            while argv and _ASSIGNMENT.match(argv[0]):  # `NAME=value command`: the command's environment
                name, _, value = argv.pop(0).partition("=")
                assigned[name] = value
            done = self.in_process(argv, cwd, {**(env or {}), **assigned}) if argv else None
            if done is not None:
                return done
        proc = run(["bash", "-c", command], cwd, env)
        return proc.returncode, proc.stdout

    def cwd(self, page: Page) -> Path:
        return ROOT if page.in_repository else self.project

    def workflow(self, page: Page, block: Block) -> None:
        """Play a GitHub Actions workflow: its ``run:`` steps for a push, then for a pull request."""
        import yaml

        steps = [step for job in yaml.safe_load(block.text)["jobs"].values() for step in job["steps"]]
        summary = self.project / "step-summary.md"
        for event in ("push", "pull_request"):
            for step in steps:
                condition = step.get("if")
                if "run" not in step or (condition and condition != f"github.event_name == '{event}'"):
                    continue
                for command in commands(step["run"]):
                    env = {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_EVENT_NAME": event}
                    if _SETUP.match(command):
                        continue
                    status, output = self.execute(command, self.project, env)
                    if status != 0:
                        msg = f"{page.name}:{block.line}: on {event}, step {command!r} exited {status}:\n{output}"
                        raise SnippetError(msg)


def commands(script: str) -> Iterator[str]:
    """The commands of a shell block: comments dropped, continuation lines joined, ``&&`` split."""
    joined = re.sub(r"\\\n\s*", " ", script)
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"\s+#\s.*$", "", line)
        yield from (part.strip() for part in line.split("&&") if part.strip())


#: Variables that move a file a page shows the path of (the cache's secret) away from its default.
MOVED = ("XDG_CONFIG_HOME", "CRYSTALLIZE_CACHE_SECRET")
#: Variables that make pytest print as on a CI machine (whole failure messages in its short summary); a reader's
#: terminal has none of them, and the outputs shown must not depend on where they were regenerated.
ON_CI = ("CI", "BUILD_NUMBER")
#: Variables a page's commands run without.
UNSET = MOVED + ON_CI


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``cwd`` as a reader's shell would, with this interpreter's environment first on PATH."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_", "GITHUB_")) and k not in UNSET}
    bin_dir = str(Path(sys.executable).parent)
    base |= {"PATH": bin_dir + os.pathsep + base.get("PATH", ""), "COLUMNS": "80", "PYTHONDONTWRITEBYTECODE": "1",
             "NO_COLOR": "1", "PYTEST_ADDOPTS": READER_PLUGINS_ONLY}
    return subprocess.run(argv, cwd=cwd, env=base | (env or {}), capture_output=False, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600, check=False)


def patch(path: Path, diff: str, where: str) -> None:
    """Apply a ```diff block: its old lines (context and ``-``) must occur in ``path`` exactly once."""
    old: list[str] = []
    new: list[str] = []
    for line in diff.splitlines():
        if line.startswith(("---", "+++", "@@")):
            continue
        sign, rest = (line[:1], line[1:]) if line[:1] in ("+", "-", " ") else (" ", line)
        if sign != "+":
            old.append(rest)
        if sign != "-":
            new.append(rest)
    text = path.read_text(encoding="utf-8")
    before, after = "\n".join(old) + "\n", "\n".join(new) + "\n"
    if text.count(before) != 1:
        raise SnippetError(f"{where}: the lines the diff changes occur {text.count(before)} times in {path.name}")
    path.write_text(text.replace(before, after), encoding="utf-8")


_HEADER_START = re.compile(r"^=+ test session starts =+$")
_COLLECTED = re.compile(r"^(collected \d+ items?|collecting \.\.\. collected|created: \d+/\d+ workers|\d+ workers \[)")


def without_header(output: str) -> str:
    """pytest's output without its session header (platform, rootdir, plugins, collected N items)."""
    lines = output.splitlines()
    if not lines or not _HEADER_START.match(lines[0]):
        return output
    end = 1
    for i, line in enumerate(lines):
        if _COLLECTED.match(line):
            end = i + 1
    if end < len(lines) and not lines[end].strip():
        end += 1
    return "\n".join(lines[end:]) + "\n"


_NORMALIZE = (
    (re.compile(r"^=+ (.*?) =+$", re.MULTILINE), r"== \1 =="),  # pytest centres its lines on the time's width
    (re.compile(r"\b\d+(\.\d+)?s\b"), "<time>"),
    (re.compile(r"\b\d{8}-\d{6}-\d{6}-[0-9a-f]{8}\b"), "<run id>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(\+00:00|Z)?)?\b"), "<when>"),
    (re.compile(r"\b(tcp|inproc)://[\w.:/-]+"), "<address>"),  # a cluster's address: a free port, a process id
    (re.compile(r"(/[\w.+-]+)+/(?=\.crystallize|crystallize_artifacts)"), ""),
)


def relative(output: str, project: Path) -> str:
    """``output`` with the scratch project's absolute path left out, and the home directory as ``~``."""
    output = output.replace(str(Path.home()) + os.sep, "~" + os.sep)  # the reader's home, as a shell abbreviates it
    for where in {str(project.resolve()), str(project)}:
        output = output.replace(where + os.sep, "").replace(where, ".")
    return output


def normalized(output: str) -> str:
    """``output`` with what changes from run to run (times, run ids, absolute paths) replaced."""
    for pattern, replacement in _NORMALIZE:
        output = pattern.sub(replacement, output)
    return "\n".join(line.rstrip() for line in output.strip("\n").splitlines())  # as a page can show it
