"""The report's timings table: a tuned method's whole study appears beside its runs' times."""

from xdplug.report import write_report
from xdplug.report.tables import tuning_seconds

from test_report import make_data


def test_tuning_seconds_sums_the_trials():
    assert tuning_seconds(None) is None
    assert tuning_seconds({"trials": [{"number": 0}]}) is None  # older stores: no trial times
    assert tuning_seconds({"trials": [{"time_s": 1.25}, {"time_s": 2.5}, {"value": 0.1}]}) == 3.75


def test_timings_table_has_the_tuning_time_on_the_tuning_seed(tmp_path):
    data = make_data()
    study = data["tuning"]["bert+gate+finetune"]
    study["seed"] = 2022
    for row, seconds in zip(study["trials"], (10.0, 20.5, 30.0)):
        row["time_s"] = seconds
    md = write_report(data, tmp_path / "out")["markdown"].read_text()
    timings = md.split("## Timings and memory")[1]
    header = next(line for line in timings.splitlines() if line.startswith("| Method |"))
    assert "| Time (s) | Tuning (s) | Peak RSS (MB) |" in header
    rows = [line for line in timings.splitlines() if line.startswith("| bert+gate+finetune |")]
    assert len(rows) == 2
    by_seed = {line.split("|")[3].strip(): [c.strip() for c in line.split("|")] for line in rows}
    assert "60.5" in by_seed["2022"] and "60.5" not in by_seed["2023"]
    untuned = next(line for line in timings.splitlines() if line.startswith("| EASE (pooled) |"))
    assert "60.5" not in untuned
