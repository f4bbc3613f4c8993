"""The uncertainty table in docs/firmware.md is the one bench/uncertainty.py computes
(`python bench/uncertainty.py --write` regenerates it), so the "±N cm" there cannot drift from
the cited error sources."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _budget():
    spec = importlib.util.spec_from_file_location("uncertainty", ROOT / "bench" / "uncertainty.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_table_is_the_budgets_output() -> None:
    budget = _budget()
    doc = (ROOT / "docs" / "firmware.md").read_text()
    assert doc.count(budget.BEGIN) == 1 and doc.count(budget.END) == 1
    shown = doc.split(budget.BEGIN + "\n", 1)[1].split(budget.END, 1)[0]
    assert shown == budget.table(), "run: python bench/uncertainty.py --write"
    # one row per configuration, each with its figure
    assert shown.count("\n| ") == len(budget.CONFIGS)


def test_the_esp32_adc_row_is_the_datasheets_60_mv_over_the_shunt() -> None:
    budget = _budget()
    assert round(budget.S["adc_esp32"][0]) == 188  # 600 uA of 16 mA over 5 m
    rows = {title: budget.rss(names) for title, names in budget.CONFIGS}
    esp32 = next(v for t, v in rows.items() if "ESP32 ADC" in t)
    ads = next(v for t, v in rows.items() if t.startswith("4–20 mA on the ADS1115"))
    assert esp32 > 4 * ads  # the recommended path is the better one by the datasheets
