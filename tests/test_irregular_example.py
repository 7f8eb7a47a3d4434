import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch


def load_example():
    path = Path(__file__).resolve().parent.parent / "examples" / "irregular_series.py"
    spec = importlib.util.spec_from_file_location("irregular_series", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


def test_amplitude_ratios_of_scaled_and_damped_sines():
    """A sine at half the amplitude scores 0.5 in every window; one damped as exp(-t) scores the
    ratio of its peak-to-peak to 2 in each window."""
    example = load_example()
    times = torch.linspace(0.0, 8.0, 8001, dtype=torch.float64)
    truth = torch.sin(2 * math.pi * times)[None] + 1.0
    half = 0.5 * (truth - 1.0) + 1.0
    assert example.amplitude_ratios(half, truth, times, 4) == pytest.approx([0.5] * 4, abs=1e-12)
    damped = torch.exp(-times) * torch.sin(2 * math.pi * times)[None]
    ratios = example.amplitude_ratios(damped, truth, times, 4)
    for i, ratio in enumerate(ratios):
        inside = (times >= 2 * i) & (times <= 2 * i + 2)
        window = damped[0, inside]
        assert ratio == pytest.approx(float(window.max() - window.min()) / 2, rel=1e-9)
    assert ratios == sorted(ratios, reverse=True) and ratios[-1] < 0.01


def test_example_runs_and_writes_its_plot(tmp_path, monkeypatch, capsys):
    """One epoch per task on 60 series: the MSE table, the amplitudes and the plot."""
    example = load_example()
    output = tmp_path / "periodic.png"
    monkeypatch.setattr(sys, "argv", ["irregular_series.py", "--epochs", "1", "--series", "60", "--device", "cpu",
                                      "--output", str(output)])
    example.main()
    printed = capsys.readouterr().out
    for line in ("interpolation, all", "interpolation, unobserved", "extrapolation, all", "[7.5, 10]"):
        assert line in printed
    assert output.stat().st_size > 10_000


def test_window_mse_of_a_shifted_sine():
    """A sine shifted by 0.1 everywhere scores 0.01 in every window; a prediction equal to the truth 0."""
    example = load_example()
    times = torch.linspace(0.0, 8.0, 801, dtype=torch.float64)
    truth = torch.sin(2 * math.pi * times)[None]
    assert example.window_mse(truth + 0.1, truth, times, 4) == pytest.approx([0.01] * 4, rel=1e-12)
    assert example.window_mse(truth, truth, times, 4) == [0.0] * 4
