"""The command line: `shenjing demo` trains the CNN and the LSTM and reports their scores."""

import subprocess
import sys

from shenjing.cli import main


def test_demo_cnn_reaches_97_percent_on_the_shipped_digits(capsys):
    assert main(["demo", "--only", "cnn"]) == 0
    out = capsys.readouterr().out
    assert "Conv2D" in out and "BatchNormalization" in out and "Total params" in out
    line = next(l for l in out.splitlines() if l.startswith("Test accuracy"))
    accuracy = float(line.split(": ")[1].split("%")[0]) / 100
    assert accuracy >= 0.97, line


def test_demo_lstm_reports_its_score_against_the_naive_forecast(capsys):
    assert main(["demo", "--only", "lstm"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("Sunspot forecast") and "naive persistence RMSE" in line


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "shenjing", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "demo" in result.stdout
