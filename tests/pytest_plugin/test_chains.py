"""Chained experiments under pytest: order, selection, conditions along the chain, errors, xdist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

NO_RANDOM = ("-p", "no:randomly")

HEADER = """
    import pytest
    from pytest_crystallize import Treatment, upstream
"""
EVALUATE = """
    weight = upstream("experiment_train", "weight.txt", loader=float)
    rounds = upstream("experiment_train", metric="rounds")

    @pytest.mark.experiment(replicates=6, seed=4, treatments=[Treatment("hot"), Treatment("cold")])
    def experiment_evaluate(weight, rounds, ctx):
        ctx.metrics.add("weight", weight)
        ctx.metrics.add("rounds", rounds)
"""
TRAIN = """
    @pytest.mark.experiment(replicates=6, seed=9, treatments=[Treatment("hot", {"shift": 100.0})])
    def experiment_train(ctx):
        value = float(ctx.rng.normal()) + ctx.get("shift", 0.0)
        ctx.artifacts.add("weight.txt", repr(value))
        ctx.metrics.add("weight", value)
        ctx.record("rounds", 3 + ctx.replicate, tags={"kind": "count"})
"""
# The downstream comes first in the file: pytest must still run the upstream first.
CHAIN = HEADER + EVALUATE + TRAIN + """
    def test_plain():
        pass
"""


def _report(pytester: pytest.Pytester, name: str = "report.json") -> dict[str, Any]:
    experiments = json.loads((pytester.path / name).read_text())["experiments"]
    return {e["nodeid"].split("::")[-1]: e["summary"] for e in experiments}


def _means(summary: dict[str, Any], metric: str) -> dict[str, float]:
    return {row["condition"]: row["mean"] for row in summary["rows"] if row["metric"] == metric}


def test_the_upstream_runs_first_and_each_condition_gets_its_own_outputs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_chain=CHAIN)
    result = pytester.runpytest("--crystallize", "-v", "--crystallize-json=report.json", *NO_RANDOM)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "*::experiment_train PASSED*",
        "*::experiment_evaluate PASSED*",
    ])
    report = _report(pytester)
    train, evaluate = _means(report["experiment_train"], "weight"), _means(report["experiment_evaluate"], "weight")
    assert evaluate["baseline"] == pytest.approx(train["baseline"])
    assert evaluate["hot"] == pytest.approx(train["hot"])  # the treated upstream's value, shift and all
    assert evaluate["hot"] - evaluate["baseline"] == pytest.approx(100.0)
    assert evaluate["cold"] == pytest.approx(train["baseline"])  # 'cold' is not an upstream treatment
    assert _means(report["experiment_evaluate"], "rounds") == {c: 3 + 2.5 for c in ("baseline", "hot", "cold")}
    result.stdout.fnmatch_lines([
        "*note: upstream: treatment 'cold' reads the baseline of upstream 'experiment_train' "
        "('weight', 'rounds'): 'experiment_train' ran no treatment 'cold'",
    ])
    assert "treatment 'hot' reads the baseline" not in result.stdout.str()


@pytest.mark.parametrize(
    ("selection", "deselected"), [(("-k", "evaluate"), 1), (("test_chain.py::experiment_evaluate",), 0)]
)
def test_selecting_only_the_downstream_runs_its_upstream_too(
    pytester: pytest.Pytester, selection: tuple[str, ...], deselected: int
) -> None:
    pytester.makepyfile(test_chain=CHAIN)
    result = pytester.runpytest("--crystallize", "-v", *selection, *NO_RANDOM)
    result.assert_outcomes(passed=2, deselected=deselected)  # test_plain only: the upstream is not counted
    result.stdout.fnmatch_lines([
        "crystallize: 1 upstream experiment(s) the selection left out run first:",
        "  test_chain.py::experiment_train (upstream of experiment_evaluate)",
        "*::experiment_train PASSED*",
        "*::experiment_evaluate PASSED*",
    ])


def test_without_crystallize_nothing_is_put_back_and_experiments_skip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_chain=CHAIN)
    result = pytester.runpytest("-k", "evaluate or plain", *NO_RANDOM)
    result.assert_outcomes(passed=1, skipped=1, deselected=1)


def test_a_missing_upstream_and_a_cycle_are_errors_of_their_items_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken="""
        import pytest
        from pytest_crystallize import upstream

        model = upstream("experiment_trian", "model.bin")
        left_in = upstream("experiment_right", metric="x")
        right_in = upstream("experiment_left", metric="x")

        @pytest.mark.experiment(replicates=2)
        def experiment_typo(model, ctx):
            pass

        @pytest.mark.experiment(replicates=2)
        def experiment_left(left_in, ctx):
            ctx.metrics.add("x", left_in)

        @pytest.mark.experiment(replicates=2)
        def experiment_right(right_in, ctx):
            ctx.metrics.add("x", right_in)

        @pytest.mark.experiment(replicates=2)
        def experiment_fine(ctx):
            ctx.metrics.add("x", 1)

        def test_plain():
            pass
    """)
    result = pytester.runpytest("--crystallize", *NO_RANDOM)
    result.assert_outcomes(passed=2, errors=3)
    result.stdout.fnmatch_lines([
        "crystallize: 3 experiment(s) defined wrongly (each errors at setup):",
        "  test_broken.py::experiment_typo: experiment 'experiment_typo': its upstream experiment "
        "'experiment_trian' does not exist in this run*",
        "  test_broken.py::experiment_right: experiment 'experiment_right' is in a cycle of upstream experiments "
        "(experiment_left -> experiment_right -> experiment_left): none of them can run first*",
        "  test_broken.py::experiment_left: experiment 'experiment_left' is in a cycle*",
    ])


def test_an_ambiguous_name_is_an_error_and_a_node_id_resolves_it(pytester: pytest.Pytester) -> None:
    train = """
        import pytest

        @pytest.mark.experiment(replicates=3)
        def experiment_train(ctx):
            ctx.metrics.add("w", {value})
    """
    pytester.makepyfile(test_a=train.format(value=1.0), test_b=train.format(value=2.0))
    pytester.makepyfile(test_use="""
        import pytest
        from pytest_crystallize import upstream

        some = upstream("experiment_train", metric="w")
        b = upstream("test_b.py::experiment_train", metric="w")

        @pytest.mark.experiment(replicates=3)
        def experiment_vague(some, ctx):
            pass

        @pytest.mark.experiment(replicates=3)
        def experiment_exact(b, ctx):
            ctx.metrics.add("w", b)
    """)
    result = pytester.runpytest("--crystallize", "--crystallize-json=report.json", *NO_RANDOM)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines([
        "*experiment_vague: experiment 'experiment_vague': its upstream 'experiment_train' is ambiguous "
        "('test_a.py::experiment_train', 'test_b.py::experiment_train'): name one by its node id*",
    ])
    assert _means(_report(pytester)["experiment_exact"], "w") == {"baseline": 2.0}


def test_an_upstream_in_another_file_through_a_conftest(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        from pytest_crystallize import upstream

        score = upstream("experiment_produce", metric="score")
    """)
    pytester.makepyfile(test_z_produce="""
        import pytest

        @pytest.mark.experiment(replicates=4)
        def experiment_produce(ctx):
            ctx.metrics.add("score", 10 * ctx.replicate)
    """, test_a_consume="""
        import pytest

        @pytest.mark.experiment(replicates=4)
        def experiment_consume(score, ctx):
            ctx.metrics.add("half", score / 2)
    """)
    result = pytester.runpytest("--crystallize", "-v", "--crystallize-json=report.json", *NO_RANDOM)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*experiment_produce PASSED*", "*experiment_consume PASSED*"])
    assert _means(_report(pytester)["experiment_consume"], "half") == {"baseline": 7.5}


def test_an_upstream_that_cannot_feed_fails_its_downstream_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_chain="""
        import pytest
        from pytest_crystallize import upstream

        few = upstream("experiment_short", metric="x")
        broken = upstream("experiment_broken", metric="x")

        @pytest.mark.experiment(replicates=2)
        def experiment_short(ctx):
            ctx.metrics.add("x", 1)

        @pytest.mark.experiment(replicates=2, alpha=7)
        def experiment_broken(ctx):
            ctx.metrics.add("x", 1)

        @pytest.mark.experiment(replicates=5)
        def experiment_wants_more(few, ctx):
            pass

        @pytest.mark.experiment(replicates=2)
        def experiment_orphan(broken, ctx):
            pass
    """)
    result = pytester.runpytest("--crystallize", *NO_RANDOM)
    result.assert_outcomes(passed=1, failed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*experiment 'experiment_wants_more': parameter 'few' takes upstream('experiment_short', metric='x'), "
        "which ran 2 replicates, but 'experiment_wants_more' runs 5*",
        "*experiment 'experiment_orphan' takes outputs of its upstream 'test_chain.py::experiment_broken', which "
        "has no result: it is defined wrongly (see its error)",
    ])


# Crystallize's DAG example (examples/dag_experiment), ported: two upstream experiments average their
# readings (times a `factor` the treatment 'scaled' sets) and write the average as an artifact; the
# downstream comfort index subtracts one from the other. Crystallize's own run gave the treated
# condition the baseline's comfort index; here 'scaled' reads the scaled averages.
DAG = """
    import json
    import pytest
    from pytest_crystallize import Treatment, data_source, pipeline_step, upstream

    @data_source
    def temperatures(ctx):
        return [20, 22, 21]

    @data_source
    def humidities(ctx):
        return [0.4, 0.5, 0.45]

    @pipeline_step()
    def average(data, ctx):
        factor = ctx.get("factor", 1.0)
        avg = sum(data) / len(data) * factor
        ctx.artifacts.add("average.json", json.dumps({"avg": avg}))
        ctx.metrics.add("average", avg)
        return avg

    SCALED = [Treatment("scaled", {"factor": 1.5})]

    @pytest.mark.experiment(replicates=2, treatments=SCALED)
    def experiment_temperature_stats(temperatures, ctx):
        average(temperatures, ctx)

    @pytest.mark.experiment(replicates=2, treatments=SCALED)
    def experiment_humidity_stats(humidities, ctx):
        average(humidities, ctx)

    temp = upstream("experiment_temperature_stats", "average.json", loader=json.loads)
    humidity = upstream("experiment_humidity_stats", "average.json", loader=json.loads)

    @pipeline_step()
    def comfort_index(data, ctx):
        index = data["temp"]["avg"] - data["humidity"]["avg"]
        ctx.metrics.add("comfort", index)
        return index

    @pytest.mark.experiment(replicates=2, treatments=[Treatment("scaled")])
    def experiment_comfort_index(temp, humidity, ctx):
        comfort_index({"temp": temp, "humidity": humidity}, ctx)
"""


def test_crystallizes_dag_example_gives_the_treated_condition_the_treated_upstream_values(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_dag=DAG)
    result = pytester.runpytest("--crystallize", "--crystallize-json=report.json", *NO_RANDOM)
    result.assert_outcomes(passed=3)
    comfort = _means(_report(pytester)["experiment_comfort_index"], "comfort")
    # By hand: mean temperature 63/3 = 21, mean humidity 1.35/3 = 0.45.
    assert comfort["baseline"] == pytest.approx(21 - 0.45)  # 20.55, as Crystallize's baseline
    assert comfort["scaled"] == pytest.approx(1.5 * 21 - 1.5 * 0.45)  # 30.825, where Crystallize printed 20.55
    assert "reads the baseline of upstream" not in result.stdout.str()


BROKEN_UPSTREAM = """
    import pytest

    @pytest.mark.experiment(replicates=2, alpha=7)
    def experiment_broken(ctx):
        ctx.metrics.add("x", 1)
"""
BROKEN_DOWNSTREAM = """
    import pytest
    from pytest_crystallize import upstream

    x = upstream("experiment_broken", metric="x")

    @pytest.mark.experiment(replicates=2)
    def experiment_after_broken(x, ctx):
        pass
"""


def test_under_xdist_a_downstream_on_another_worker_waits_for_its_upstream(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_chain=CHAIN, test_dag=DAG, test_broken_up=BROKEN_UPSTREAM,
                        test_broken_down=BROKEN_DOWNSTREAM)
    serial = pytester.runpytest("--crystallize", "--crystallize-json=serial.json", *NO_RANDOM)
    distributed = pytester.runpytest_subprocess(
        "--crystallize", "-n", "2", "-v", "--crystallize-json=xdist.json", *NO_RANDOM, timeout=300
    )
    serial.assert_outcomes(passed=6, failed=1, errors=1)
    distributed.assert_outcomes(passed=6, failed=1, errors=1)
    # An upstream with no result is published as such: its downstream fails with the reason, never waits forever.
    distributed.stdout.fnmatch_lines([
        "*experiment 'experiment_after_broken' takes outputs of its upstream 'test_broken_up.py::experiment_broken', "
        "which has no result: it is defined wrongly (see its error)",
    ])
    workers = {
        line.split("::")[-1].split()[0]: line.split()[0]
        for line in distributed.stdout.lines if line.startswith("[gw") and "PASSED" in line
    }
    assert set(workers.values()) == {"[gw0]", "[gw1]"}
    assert _report(pytester, "xdist.json") == _report(pytester, "serial.json")


def test_under_xdist_loadfile_the_chain_crosses_workers_and_still_flows(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_down=HEADER + EVALUATE, test_up=HEADER + TRAIN)
    result = pytester.runpytest_subprocess(
        "--crystallize", "-n", "2", "--dist", "loadfile", "-v", "--crystallize-json=report.json", *NO_RANDOM
    )
    result.assert_outcomes(passed=2)
    workers = {line.split("::")[-1].split()[0]: line.split()[0] for line in result.stdout.lines if "PASSED" in line}
    assert workers["experiment_train"] != workers["experiment_evaluate"]  # a handoff between workers
    report = _report(pytester)
    train, evaluate = _means(report["experiment_train"], "weight"), _means(report["experiment_evaluate"], "weight")
    assert evaluate == pytest.approx({**train, "cold": train["baseline"]})


def test_handoff_never_unpickles_and_reads_back_bytes_and_text(tmp_path: Path) -> None:
    from pytest_crystallize import run_experiment
    from pytest_crystallize.pytest_plugin.handoff import publish, published

    def produce(ctx: Any) -> None:
        ctx.artifacts.add("blob.bin", bytes([ctx.replicate, 0, 255]))
        ctx.artifacts.add("note.txt", f"r{ctx.replicate}")
        ctx.metrics.add("x", ctx.replicate)

    result = run_experiment(produce, replicates=3, keep_artifacts=True)
    publish(tmp_path, "t.py::experiment_produce", result, "unused")
    back = published(tmp_path, "t.py::experiment_produce", "experiment_use")
    assert back == result
    assert back.artifacts == result.artifacts
    assert back.artifacts is not None
    assert back.artifacts["baseline", 2] == {"blob.bin": b"\x02\x00\xff", "note.txt": "r2"}
    assert not list(tmp_path.rglob("*.pkl"))


def test_handoff_says_why_an_upstream_has_no_result_or_its_worker_died(tmp_path: Path) -> None:
    import subprocess
    import sys

    from pytest_crystallize import ChainError
    from pytest_crystallize.pytest_plugin.handoff import publish, published, started

    publish(tmp_path, "t.py::experiment_a", None, "it did not run or failed before running (see its report)")
    with pytest.raises(ChainError, match=r"upstream 't.py::experiment_a', which has no result: it did not run"):
        published(tmp_path, "t.py::experiment_a", "experiment_b")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    started(tmp_path, "t.py::experiment_c")
    pid_files = list(tmp_path.glob("*.pid"))
    pid_files[0].write_text(gone.stdout.strip())
    with pytest.raises(ChainError, match=r"the pytest-xdist worker running it stopped before it finished"):
        published(tmp_path, "t.py::experiment_c", "experiment_d")


def test_a_parametrized_upstream_is_named_by_its_item(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_param="""
        import pytest
        from pytest_crystallize import upstream

        @pytest.mark.parametrize("size", [1, 2])
        @pytest.mark.experiment(replicates=2)
        def experiment_fit(size, ctx):
            ctx.metrics.add("size", size)

        vague = upstream("experiment_fit", metric="size")
        exact = upstream("experiment_fit[2]", metric="size")

        @pytest.mark.experiment(replicates=2)
        def experiment_vague(vague, ctx):
            pass

        @pytest.mark.experiment(replicates=2)
        def experiment_exact(exact, ctx):
            assert exact == 2
    """)
    result = pytester.runpytest("--crystallize", *NO_RANDOM)
    result.assert_outcomes(passed=3, errors=1)
    assert (  # not fnmatch: the node ids' brackets would read as a character class
        "experiment 'experiment_vague': its upstream 'experiment_fit' is parametrized; name one of its items, "
        "e.g. upstream('test_param.py::experiment_fit[1]', ...)"
    ) in result.stdout.str()


def test_an_upstream_lets_its_artifacts_go_once_its_downstreams_ran(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import json

        ITEMS = []

        def pytest_collection_finish(session):
            ITEMS.extend(session.items)

        def pytest_runtest_logstart(nodeid, location):
            # Before each item: is the upstream still holding its artifacts?
            for item in ITEMS:
                if item.name == "experiment_train" and item.result is not None:
                    held = item.result.artifacts is not None
                    with open("held.jsonl", "a") as out:
                        out.write(json.dumps([nodeid.split("::")[-1], held]) + "\\n")
    """)
    pytester.makepyfile(test_chain=CHAIN)
    pytester.runpytest("--crystallize", *NO_RANDOM).assert_outcomes(passed=3)
    held = [json.loads(line) for line in (pytester.path / "held.jsonl").read_text().splitlines()]
    assert held == [["experiment_evaluate", True], ["test_plain", False]]


def test_without_xdist_a_chain_adds_no_unknown_mark(pytester: pytest.Pytester) -> None:
    # xdist registers xdist_group; without it the mark would warn (an error under -W error).
    pytester.makepyfile(test_chain=CHAIN)
    result = pytester.runpytest_subprocess(
        "--crystallize", "-p", "no:xdist", "-W", "error::pytest.PytestUnknownMarkWarning", *NO_RANDOM,
    )
    result.assert_outcomes(passed=3)
    assert "PytestUnknownMarkWarning" not in result.stdout.str() + result.stderr.str()


TWO_DOWNSTREAMS = """
    import pytest
    from pytest_crystallize import upstream

    weight = upstream("experiment_train", metric="weight")

    @pytest.mark.experiment(replicates=3)
    def experiment_evaluate(weight, ctx):
        ctx.metrics.add("weight", weight)

    @pytest.mark.experiment(replicates=3)
    def experiment_report(weight, ctx):
        ctx.metrics.add("weight", weight)

    @pytest.mark.experiment(replicates=3)
    def experiment_train(ctx):
        ctx.metrics.add("weight", float(ctx.replicate))
"""


def test_the_put_back_upstream_names_only_the_selected_downstreams(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_chain=TWO_DOWNSTREAMS)
    result = pytester.runpytest("--crystallize", "-k", "evaluate", *NO_RANDOM)
    result.assert_outcomes(passed=2, deselected=1)
    result.stdout.fnmatch_lines(["  test_chain.py::experiment_train (upstream of experiment_evaluate)"])
    assert "experiment_report" not in result.stdout.str()  # deselected: it does not run


@pytest.mark.parametrize("xdist", [False, True])
def test_a_downstream_whose_upstream_did_not_run_says_which_and_how_to_run_it(
    pytester: pytest.Pytester, xdist: bool,
) -> None:
    skipped = TWO_DOWNSTREAMS.replace(
        "    @pytest.mark.experiment(replicates=3)\n    def experiment_train",
        "    @pytest.mark.skip(reason='slow')\n    @pytest.mark.experiment(replicates=3)\n    def experiment_train",
    )
    pytester.makepyfile(test_chain=skipped)
    args = ("--crystallize", "-k", "evaluate", *NO_RANDOM)
    # Under xdist the upstream's worker publishes why it has no result, for a downstream on the other one.
    result = pytester.runpytest_subprocess(*args, "-n", "2", timeout=300) if xdist else pytester.runpytest(*args)
    result.assert_outcomes(failed=1, skipped=1, deselected=0 if xdist else 1)  # xdist's workers deselect
    result.stdout.fnmatch_lines([
        "*experiment 'experiment_evaluate' takes outputs of its upstream 'test_chain.py::experiment_train', "
        "which has no result: it did not run in this session (skipped, or its setup failed: see its report); "
        "let it run in the same session: remove what skips it, and if you select by name, select it too "
        "(add 'or experiment_train' to -k); outputs saved by an earlier run are not read",
    ])
    assert "chains.py" not in result.stdout.str()  # a readable failure, not a traceback into the plugin
