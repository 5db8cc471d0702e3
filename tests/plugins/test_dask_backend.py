"""DaskExecution against a real scheduler and two workers started as separate processes.

The workers run where the user's modules are not importable (see
``dask_cluster.py``), so every run here proves that the user's code was
shipped. Values are compared with a serial run of the same seed, exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")
#: Modules the workers cannot import: an experiment module, a helper it imports, and
#: two helpers that import each other (by module and by name, at import and in functions).
PROJECT = {
    "cycle_a.py": """
        import cycle_b

        SCALE = 3.0

        def spread(x):
            return cycle_b.twice(x) * SCALE / 2
    """,
    "cycle_b.py": """
        import cycle_a

        def twice(x):
            return 2 * x

        def scale():
            return cycle_a.SCALE
    """,
    "lab.py": """
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Recipe:
            offset: float
    """,
    "experiments_mod.py": """
        import os
        from pathlib import Path

        import cycle_a
        from cycle_b import scale
        from lab import Recipe
        from pytest_crystallize import Treatment, data_source, pipeline_step

        TREATMENTS = [Treatment("shifted", {"shift": 0.5})]

        @data_source
        def noisy(ctx):
            return Recipe(offset=float(ctx.rng.normal()))

        @pipeline_step()
        def score(recipe, ctx, shift=0.0):
            ctx.metrics.add("score", cycle_a.spread(recipe.offset) + shift + scale())
            ctx.record("tagged", ctx.replicate, tags={"condition": ctx.condition})

        def run_one(noisy, ctx, where=None):
            score(noisy, ctx)
            ctx.metrics.add("uniform", ctx.rng.uniform())
            if where is not None:  # which process ran it: a side effect, never a metric
                Path(where, str(os.getpid())).touch()
    """,
}


def write_project(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))


@pytest.fixture
def cluster(dask_cluster_module: Any) -> Any:
    return dask_cluster_module


def run_script(root: Path, code: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    (root / "script.py").write_text(textwrap.dedent(code))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "script.py"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_modules_of_the_project_are_not_importable_on_the_workers(cluster: Any, tmp_path: Path) -> None:
    # The premise of every test here: what runs on a worker was shipped, not found there.
    import functools
    import importlib.util

    from distributed import Client

    write_project(tmp_path, PROJECT)
    with Client(cluster.address, set_as_default=False) as client:
        found = client.run(functools.partial(importlib.util.find_spec, "experiments_mod"))
        cwd = client.run(os.getcwd)
    assert len(found) == 2
    assert set(found.values()) == {None}
    assert all(Path(c).name == "worker-home" for c in cwd.values())


def test_runner_mode_on_the_cluster_equals_a_serial_run_whatever_the_chunking(cluster: Any, tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    (tmp_path / "ran").mkdir()
    done = run_script(tmp_path, f"""
        import json, os
        from pytest_crystallize import run_experiment
        from pytest_crystallize.plugins.dask import DaskExecution
        import experiments_mod as m

        def columns(result):
            data = result.to_dict()
            data.pop("provenance")
            return data

        options = dict(name="on_cluster", replicates=12, seed=11, treatments=m.TREATMENTS,
                       datasources={{"noisy": m.noisy}})
        serial_result = run_experiment(m.run_one, **options)
        serial = columns(serial_result)
        report = {{}}
        for size in (1, 5, None):
            with DaskExecution({cluster.address!r}, chunk_size=size) as backend:
                result = run_experiment(m.run_one, plugins=[backend], arguments={{"where": {str(tmp_path / "ran")!r}}}, **options)
            report[str(size)] = columns(result) == serial
            report["execution"] = list(result.provenance.execution)
        report["values"] = len(serial_result)
        report["errors"] = len(serial_result.errors)
        report["pid"] = os.getpid()
        print(json.dumps(report))
    """)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [report["1"], report["5"], report["None"]] == [True, True, True]
    assert report["values"] == 12 * 2 * 3
    assert report["errors"] == 0
    ran = {int(p.name) for p in (tmp_path / "ran").iterdir()}
    assert len(ran) == 2  # both workers ran replicates...
    assert report["pid"] not in ran  # ...and the script none
    assert report["execution"][0].startswith("DaskExecution: 24 replicate tasks in ")
    assert cluster.address in report["execution"][0]
