"""EarlyStopping and MetricsLog: an undefined metric (None/NaN) is never compared, chosen or written as a number."""
import csv
import math

import pytest

from cnnkit.engine.callbacks import EarlyStopping, MetricsLog


def feed(stopper: EarlyStopping, values) -> list[bool]:
    return [stopper.update(v, epoch) for epoch, v in enumerate(values)]


@pytest.mark.parametrize("undefined", [None, math.nan])
def test_undefined_values_are_never_the_best(undefined):
    s = EarlyStopping("map", "max", patience=2)
    assert feed(s, [0.3, undefined, 0.2, undefined, undefined]) == [True, False, False, False, False]
    assert s.best == 0.3 and s.best_epoch == 0
    assert s.bad_evals == 1 and not s.should_stop  # only 0.2 counts against patience


def test_min_mode_and_patience_count_only_defined_values():
    s = EarlyStopping("loss", "min", patience=2)
    assert feed(s, [None, 1.0, None, 1.5, 0.5, 2.0, 3.0]) == [True, True, False, False, True, False, False]
    assert (s.best, s.best_epoch, s.should_stop) == (0.5, 4, True)


def test_until_a_value_exists_the_latest_weights_stand_in():
    """Nothing defined yet: best.pt must still exist, so each evaluation is "best" while `best` stays None;
    the first real value then wins and a later undefined one never replaces it."""
    s = EarlyStopping("map", "max", patience=1)
    assert feed(s, [None, None, None]) == [True, True, True]
    assert s.best is None and s.best_epoch == 2 and not s.should_stop
    assert s.update(0.0, 3) and s.best == 0.0 and s.best_epoch == 3
    assert not s.update(None, 4) and s.best_epoch == 3
    restored = EarlyStopping("map", "max", patience=1)
    restored.load_state_dict(s.state_dict())
    assert restored.best == 0.0 and not restored.update(None, 5)


def test_metrics_csv_holds_empty_cells_for_undefined(tmp_path):
    log = MetricsLog(tmp_path, enabled=True)
    log.log({"epoch": 1, "train_loss": 1.5, "val_map": 0.25, "val_map_large": None})
    log.log({"epoch": 2, "train_loss": 1.0, "val_map": None, "val_map_large": math.nan})
    log.close()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["val_map"] for r in rows] == ["0.25", ""]
    assert [r["val_map_large"] for r in rows] == ["", ""]
    text = (tmp_path / "metrics.csv").read_text()
    assert "-1" not in text and "nan" not in text.lower() and "None" not in text
    assert log.rows[1]["val_map_large"] is None
