"""Data-parallel fits on torch.distributed: 2 ranks with the gloo backend on the loopback interface,
spawned here, against the same fits in one process (tests/distributed_fits.py)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing

import distributed_fits as fits
import physode
from physode.training import Group, process_group

RANKS = 2
TIMEOUT = 240  # seconds for the ranks' whole session


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """The results of every fit on each of 2 ranks, and the folder of their checkpoint."""
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build")
    folder = tmp_path_factory.mktemp("ranks")
    context = torch.multiprocessing.start_processes(fits.rank, args=(RANKS, str(folder)), nprocs=RANKS,
                                                    join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {RANKS} ranks did not finish within {TIMEOUT} s")
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(RANKS)], folder


def assert_same(distributed: dict, single: dict, tolerance: float) -> None:
    for name, value in single.items():
        np.testing.assert_allclose(distributed[name], value, rtol=tolerance, atol=tolerance, err_msg=name)


def test_least_squares_on_two_ranks_gives_the_parameters_of_one_process(ranks):
    """Levenberg-Marquardt with J^T J and J^T r summed over the ranks takes one process's steps."""
    results, _ = ranks
    single = fits.least_squares()
    for result in results:
        assert_same(result["least_squares"]["parameters"], single["parameters"], 1e-10)
        np.testing.assert_allclose(result["least_squares"]["initial"], single["initial"], rtol=1e-10, atol=1e-10)
    assert single["parameters"]["length"][0] == pytest.approx(0.8, rel=0.05)


def test_mini_batches_cover_every_series_once_per_epoch(ranks):
    """8 series in batches of 3: each epoch's 3 updates read every series exactly once over the ranks."""
    results, _ = ranks
    seen = [result["seen"] for result in results]
    assert [len(s) for s in seen] == [4 * 3, 4 * 3]  # 4 epochs of 3 batches, each rank a part of every batch
    for epoch in range(4):
        read = sorted(i for s in seen for batch in s[3 * epoch:3 * epoch + 3] for i in batch)
        assert read == list(range(8))


@pytest.mark.parametrize("series", [7, 8])
def test_adam_on_two_ranks_takes_the_steps_of_one_process(ranks, series):
    """Gradients summed over the ranks; with 7 series the last batch has 1 series and one rank none."""
    results, _ = ranks
    single = fits.adam(series)
    for result in results:
        assert_same(result[f"adam{series}"]["parameters"], single["parameters"], 1e-10)


def test_latent_ode_on_two_ranks_takes_the_steps_of_one_process(ranks):
    """The logsumexp objective over sums from both ranks, and the validation loss summed over them."""
    results, _ = ranks
    single = fits.latent_ode()
    for result in results:
        assert_same(result["latent_ode"], single, 1e-10)


def test_a_checkpoint_of_two_ranks_resumes_in_one_process(ranks):
    """2 epochs on 2 ranks, then 2 more in one process from rank 0's checkpoint: the 4 epochs of one process."""
    results, folder = ranks
    resumed = fits.adam(8, epochs=4, checkpoint=str(folder / "fit.h5"), resume=True)
    assert_same(resumed["parameters"], fits.adam(8)["parameters"], 1e-10)
    assert results[0]["checkpointed"] == results[1]["checkpointed"]


def test_a_solve_failing_on_one_rank_is_skipped_by_every_rank(ranks):
    """Rank 1's first solve fails: both ranks drop that update (rank 0 warns, naming rank 1), restore
    the parameters and go on in step, to the same parameters."""
    results, _ = ranks
    zero, one = (result["failing"] for result in results)
    assert zero["parameters"] == one["parameters"]
    assert len(zero["skipped"]) == 1 and "failed on rank 1" in zero["skipped"][0] and one["skipped"] == []
    assert zero["parameters"] != results[0]["adam8"]["parameters"]  # the skipped update and halved lr changed the path


def test_ranks_given_different_data_or_settings_are_refused(ranks):
    """Every rank passes the whole data set and the same arguments: rank 0 with 8 series and rank 1
    with 9, or a checkpoint given to rank 0 alone, raise on both ranks instead of waiting forever."""
    results, _ = ranks
    for result in results:
        assert all("ranks were given different fits" in message for message in result["mismatched"])


def test_multiple_shooting_with_an_idle_rank_takes_the_steps_of_one_process(ranks):
    """7 series in batches of 3 with shooting windows: the idle rank's zero sums carry the continuity term's combine."""
    results, _ = ranks
    single = fits.adam(7, shooting=8)
    for result in results:
        assert_same(result["shooting"]["parameters"], single["parameters"], 1e-10)
        np.testing.assert_allclose(result["shooting"]["loss"], single["loss"], rtol=1e-10)


def test_process_group_outside_a_launcher_is_this_process_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert process_group(None, torch.device("cpu")) == Group()
    assert process_group(False, torch.device("cpu")) == Group()
    with pytest.raises(ValueError, match="distributed=True.*torchrun"):
        process_group(True, torch.device("cpu"))
    with pytest.raises(TypeError, match="distributed must be None"):
        physode.systems.DampedPendulum().fit(fits.pendulum_data(2), distributed="yes")


def test_the_example_runs_unchanged_under_torchrun():
    """examples/distributed_fit.py on 2 ranks started by torchrun (the launcher's environment, no
    code for it in the script) prints the fit of one process."""
    example = Path(__file__).resolve().parent.parent / "examples" / "distributed_fit.py"
    command = [sys.executable, str(example), "--series", "16"]
    launched = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *command[1:]]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    outputs = [subprocess.run(c, capture_output=True, text=True, timeout=TIMEOUT, env=environment) for c in (command, launched)]
    for output in outputs:
        assert output.returncode == 0, output.stderr[-2000:]
    single, ranks = ([line for line in o.stdout.splitlines() if line.startswith("  ")] for o in outputs)
    assert "on 2 rank(s)" in outputs[1].stdout and "on 1 rank(s)" in outputs[0].stdout
    assert ranks == single and len(single) == 3
