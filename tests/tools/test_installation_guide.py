"""hardware/installation.md's figures are computed, not written: the footprint table from the
beam angles, the temperature table from the firmware's own speed of sound, the boom examples
and the stilling pipe's lag table from their formulas. A change to either side shows here."""

import math
import re
from pathlib import Path

from station import processing

GUIDE = (Path(__file__).resolve().parents[2] / "hardware" / "installation.md").read_text()


def table(header: str) -> dict[str, list[str]]:
    """The rows of the markdown table whose header row starts with `header`, by first cell."""
    out: dict[str, list[str]] = {}
    inside = False
    for line in GUIDE.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|"):
            inside = False
        elif cells[0] == header:
            inside = True
        elif inside and not set(cells[0]) <= {"-"}:
            out[cells[0]] = cells[1:]
    return out


def test_the_footprint_table_follows_the_beam_angles() -> None:
    rows = table("distance to the water H")
    assert list(rows) == ["1 m", "2 m", "3 m", "4 m", "5 m"]
    for h, cells in rows.items():
        metres = int(h.split()[0])
        want = [2 * metres * math.tan(math.radians(angle / 2)) for angle in (60, 100, 75)]
        assert [float(c.split()[0]) for c in cells] == [round(w, 2) for w in want], h
    assert rows["4 m"][0] == "4.62 m"  # the review's 4.6 m at 4 m


def test_the_temperature_table_follows_the_firmwares_speed_of_sound() -> None:
    per_k = processing.speed_of_sound(21) / processing.speed_of_sound(20) - 1
    assert f"{100 * per_k:.2f} % per °C" in GUIDE
    rows = table("path (sensor face to water)")
    assert len(rows) == 5
    for h, cells in rows.items():
        path_mm = int(h.split()[0]) * 1000
        want = [f"{path_mm * per_k:.1f} mm", f"{path_mm * per_k * 3:.0f} mm",
                f"{path_mm * per_k * 8:.0f} mm"]
        assert cells == want, h


def test_the_boom_examples_and_the_pipe_lag_follow_their_formulas() -> None:
    for h_low, reach in re.findall(r"H_low = (\d) m gives L ≥ (\d\.\d\d) m", GUIDE):
        assert float(reach) == round(int(h_low) * math.tan(math.radians(30)) + 0.2, 2)
    lag = table("open area a / pipe area A")
    assert len(lag) == 3
    for ratio, cells in lag.items():
        area = int(re.match(r"1/(\d+)", ratio).group(1))  # type: ignore[union-attr]
        for rise_m_h, cell in zip((0.5, 1, 2), cells, strict=True):
            mm = (area / 0.6 * rise_m_h / 3600) ** 2 / (2 * 9.81) * 1000
            assert cell == (f"{mm:.1f} mm" if mm >= 0.05 else "< 0.1 mm"), (ratio, rise_m_h)
