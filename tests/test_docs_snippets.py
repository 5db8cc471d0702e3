"""Every code block of the docs and the README runs, and every output they show is what the code prints now.

Each page is played top to bottom in a pytester project, as a reader follows
it (``docs/snippets.py`` says what each kind of block does). Plain ``pytest``
commands run in this process, through pytester, to keep the suite fast; the
outputs they print are compared with the shown ones, which
``docs/regenerate.py`` writes by running the same commands in a shell, so
the two ways are checked against each other too. Only run times, run ids,
dates and absolute paths may differ.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
import re
import runpy
import sys
import traceback
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))

import reference_pages  # noqa: E402  (docs/ holds the tools that read and write the pages)
import snippets  # noqa: E402

#: Deliberate fragments (``<!-- fragment: why -->``): code that cannot run as shown. Keep them few.
MAX_FRAGMENTS = 3  # two used today: the README's set-up, the Dask page's remote cluster


@pytest.fixture(scope="session")
def _docs_preload() -> None:
    """Import once what every in-process run would import again: pytester restores ``sys.modules`` after each.

    Session scope runs before the function-scoped ``pytester`` takes its snapshot of ``sys.modules``.
    """
    import pytest_crystallize

    for module in pkgutil.walk_packages(pytest_crystallize.__path__, "pytest_crystallize."):
        importlib.import_module(module.name)  # assertion rewriting makes each re-import costly
    for name in ("pandas", "pyarrow.parquet"):
        importlib.import_module(name)
    for name in ("hypothesis", "_hypothesis_pytestplugin", "xdist.plugin", "xdist.looponfail", "execnet"):
        with contextlib.suppress(ImportError):  # pytest plugins of the dev extra, loaded by every inner run
            importlib.import_module(name)


def _in_process(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Run ``pytest``, ``crystallize`` and ``python script.py`` commands in this process (no interpreter start-up)."""

    def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str] | None:
        with monkeypatch.context() as patch:
            patch.chdir(cwd)
            for name, value in {"COLUMNS": "80", "PYTEST_ADDOPTS": snippets.READER_PLUGINS_ONLY, **env}.items():
                patch.setenv(name, value)
            if argv[0] == "pytest":
                result = pytester.runpytest_inprocess(*argv[1:], no_reraise_ctrlc=True)  # a page may show Ctrl-C
                return int(result.ret), "\n".join(result.outlines + result.errlines) + "\n"
            if argv[0] == "crystallize":
                from pytest_crystallize.cli import main

                out = io.StringIO()
                return main(argv[1:], stdout=out, stderr=out), out.getvalue()
            if argv[0] == "python" and len(argv) == 2 and argv[1].endswith(".py"):
                return _script(cwd / argv[1], patch)
        return None

    return run


def _script(path: Path, patch: pytest.MonkeyPatch) -> tuple[int, str]:
    """``python path`` in this process: its output, and its exit status (1 on an exception, with the traceback)."""
    before = set(sys.modules)
    patch.syspath_prepend(str(path.parent))
    out = io.StringIO()
    status = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except Exception:
            traceback.print_exc()
            status = 1
    # Forget the page's own modules (a later block may change them); keep libraries, which cannot reload.
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(path.parent)):
            del sys.modules[name]
    return status, out.getvalue()


def _single_threaded_blas() -> contextlib.AbstractContextManager[object]:
    """BLAS on one thread while a page plays: its small fits gain nothing from threads that spin on a busy machine.

    The numbers do not change (the examples run single-threaded themselves and show the same).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _local_dask_cluster_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start the page's local Dask clusters with workers in this process (threads), not worker processes.

    A cluster of worker processes takes about ten seconds to start here; one in this process a fraction
    of a second. What the page shows is still what processes print: ``docs/regenerate.py`` runs its
    commands in a shell, with real worker processes, and the outputs must agree (the cluster's address
    aside). What is left untested here is the start of the processes, which the Dask tests cover.
    """
    distributed = pytest.importorskip("distributed", reason="the Dask page needs the dask extra")
    start = distributed.LocalCluster

    def in_process(*args: object, **kwargs: object) -> object:
        return start(*args, **{**kwargs, "processes": False})

    monkeypatch.setattr(distributed, "LocalCluster", in_process)
    # A worker serves shipped modules through sys.meta_path; in this process that finder would outlive the page.
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path])


@pytest.mark.usefixtures("_docs_preload")
@pytest.mark.parametrize("page", snippets.pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_block_runs_and_every_output_shown_is_current(
    page: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    parsed = snippets.parse(page)
    needs_sklearn = any(isinstance(i, snippets.Block) and "from sklearn" in i.text for i in parsed.items)
    if needs_sklearn:
        pytest.importorskip("sklearn", reason=f"{parsed.name}'s example needs scikit-learn: pip install -e '.[examples]'")
    # A home of its own, beside the project (pytester's is the project): paths under it show as ~/ as in a shell.
    home = pytester.path.parent / f"{pytester.path.name}-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in snippets.UNSET:
        monkeypatch.delenv(name, raising=False)
    if "crystallize-dask=local" in page.read_text(encoding="utf-8"):
        _local_dask_cluster_in_process(monkeypatch)
    player = snippets.Player(pytester.path, in_process=_in_process(pytester, monkeypatch))
    with _single_threaded_blas():
        player.play(parsed)
    stale = [
        f"{parsed.name}:{block.line}: shown\n{block.text}\nbut the command now prints\n{fresh}"
        for block, fresh in player.outputs.items()
        if snippets.normalized(block.text) != snippets.normalized(snippets.relative(fresh, pytester.path))
    ]
    assert not stale, "\n".join(stale) + "\nrun: python docs/regenerate.py " + parsed.name


def test_fragments_are_marked_and_few():
    fragments = [
        f"{page.relative_to(ROOT)}:{item.line}"
        for page in snippets.pages()
        for item in snippets.parse(page).items
        if isinstance(item, snippets.Block) and item.marker == "fragment"
    ]
    assert len(fragments) <= MAX_FRAGMENTS, f"too many code blocks that do not run: {fragments}"


def test_the_generated_reference_pages_are_current():
    for path, text in reference_pages.generated().items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run python docs/regenerate.py"


def test_every_option_is_in_the_options_reference_and_the_readme():
    from pytest_crystallize.pytest_plugin.options import add_options

    recorder = reference_pages._Recorder()
    add_options(recorder)
    reference = (ROOT / "docs" / "reference" / "options.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for names, _ in recorder.options:
        assert f"`{names[0]}" in reference, names[0]
        assert re.search(rf"^\| `{re.escape(names[0])}[ =`\[]", readme, re.MULTILINE), f"{names[0]} not in README's table"
    for name, _, _ in recorder.inis:
        assert f"`{name}`" in reference, name


# -- the player itself: each rule it checks can fail -----------------------------------------


def _page(tmp_path: Path, text: str) -> snippets.Page:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return snippets.parse(path)


def test_a_stale_output_is_told_apart_from_a_current_one(tmp_path: Path):
    page = _page(tmp_path, "<!-- output: echo 'done in 0.5s' -->\n```text\n$ echo 'done in 0.5s'\ndone in 9.1s\n```\n"
                           "<!-- /output -->\n\n<!-- output: echo two -->\n```text\n$ echo two\nthree\n```\n<!-- /output -->\n")
    player = snippets.Player(tmp_path)
    player.play(page)
    verdicts = [snippets.normalized(b.text) == snippets.normalized(fresh) for b, fresh in player.outputs.items()]
    assert verdicts == [True, False]  # a run time may differ, the words may not


def test_a_failing_block_fails_the_page_and_an_expected_exit_status_is_checked(tmp_path: Path):
    with pytest.raises(snippets.SnippetError, match="failed"):
        snippets.Player(tmp_path).play(_page(tmp_path, "```python\nraise SystemExit(3)\n```\n"))
    snippets.Player(tmp_path).play(_page(tmp_path, "<!-- exit: 1 -->\n```bash\nfalse\n```\n"))
    with pytest.raises(snippets.SnippetError, match="exit status 0, the page says 1"):
        snippets.Player(tmp_path).play(_page(tmp_path, "<!-- exit: 1 -->\n```bash\ntrue\n```\n"))


def test_a_patch_must_match_its_file_exactly_once(tmp_path: Path):
    (tmp_path / "a.py").write_text("x = 1\ny = 2\n", encoding="utf-8")
    snippets.patch(tmp_path / "a.py", " x = 1\n-y = 2\n+y = 3\n", "here")
    assert (tmp_path / "a.py").read_text(encoding="utf-8") == "x = 1\ny = 3\n"
    with pytest.raises(snippets.SnippetError, match="occur 0 times"):
        snippets.patch(tmp_path / "a.py", "-y = 2\n+y = 4\n", "here")


def test_an_unmarked_block_of_an_unknown_language_is_refused(tmp_path: Path):
    with pytest.raises(snippets.SnippetError, match="needs a marker"):
        snippets.Player(tmp_path).play(_page(tmp_path, "```rust\nfn main() {}\n```\n"))


def _keys(mapping: dict, *paths: str) -> set[str]:
    """The keys of ``mapping`` and of the mappings at ``paths`` (dotted; ``*`` for every item or value)."""
    found = set(mapping)
    for path in paths:
        level = [mapping]
        for part in path.split("."):
            level = [x for m in level for x in (m.values() if isinstance(m, dict) else m)] if part == "*" else [
                m[part] for m in level if isinstance(m, dict) and isinstance(m.get(part), (dict, list))]
        found |= {key for item in level if isinstance(item, dict) for key in item}
    return found


def test_the_store_page_names_every_field_of_a_saved_run(pytester: pytest.Pytester):
    import json

    import pyarrow.parquet as pq

    pytester.makepyfile(test_saved="""
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        @pytest.mark.experiment(replicates=6, treatments=[Treatment("t", {"shift": 1.0})])
        @hypothesis(metric="m", direction="maximize")
        def experiment_saved(ctx):
            ctx.record("m", ctx.rng.normal() + ctx.get("shift", 0.0), tags={"k": 1})
    """)
    pytester.runpytest_inprocess("--crystallize", "--crystallize-save=main").assert_outcomes(passed=1)
    gated = pytester.runpytest_inprocess("--crystallize", "--crystallize-save=next", "--crystallize-gate=1%")
    gated.assert_outcomes(passed=1)
    records = [json.loads(p.read_text(encoding="utf-8")) for p in pytester.path.glob(".crystallize/runs/*/run.json")]
    (record,) = [r for r in records if r["name"] == "next"]  # its options hold the gate's too
    run = pytester.path / ".crystallize" / "runs" / record["id"]
    table = pq.read_table(run / record["experiments"][0]["file"])
    header = json.loads(table.schema.metadata[b"pytest_crystallize"])
    fields = _keys(record, "machine", "options", "options.settings", "experiments.*", "experiments.*.definition",
                   "experiments.*.definition.hypotheses.*", "experiments.*.definition.treatments.*",
                   "experiments.*.definition.inputs.*", "experiments.*.gate.*")
    fields |= _keys(header, "verdicts.*", "provenance") | set(table.column_names)
    page = (ROOT / "docs" / "reference" / "store.md").read_text(encoding="utf-8")
    missing = sorted(name for name in fields if f"`{name}`" not in page)
    assert not missing, f"docs/reference/store.md does not describe {missing}"


def test_a_leading_assignment_sets_the_commands_environment_in_process_too(tmp_path: Path):
    seen: list[tuple[list[str], dict[str, str]]] = []

    def in_process(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
        seen.append((argv, env))
        return 0, ""

    snippets.Player(tmp_path, in_process=in_process).execute("PRESS_CTRL_C=1 pytest --crystallize", tmp_path)
    assert seen == [(["pytest", "--crystallize"], {"PRESS_CTRL_C": "1"})]
    status, output = snippets.Player(tmp_path).execute("GREETING=hello printenv GREETING", tmp_path)  # in a shell
    assert (status, output) == (0, "hello\n")


def test_dates_cluster_addresses_and_the_home_directory_do_not_make_an_output_stale(tmp_path: Path):
    shown = "changed since attempt 1 (2026-12-07) on the cluster at tcp://127.0.0.1:40655\nsecret in ~/.config/x\n"
    fresh = f"changed since attempt 1 (2027-01-31) on the cluster at inproc://192.0.2.2/8999/1\nsecret in {Path.home()}/.config/x\n"
    assert snippets.normalized(shown) == snippets.normalized(snippets.relative(fresh, tmp_path))
    assert snippets.normalized(shown) != snippets.normalized(shown.replace("attempt 1", "attempt 2"))


def test_a_page_chooses_where_its_commands_run(tmp_path: Path):
    assert _page(tmp_path, "<!-- cwd: repository -->\n").in_repository
    assert not _page(tmp_path, "<!-- cwd: repository -->\n<!-- cwd: project -->\n").in_repository  # as the README
    assert snippets.parse(snippets.README).in_repository is False  # its example is a file of its own project
    with pytest.raises(snippets.SnippetError, match="'repository' or 'project'"):
        _page(tmp_path, "<!-- cwd: elsewhere -->\n")
