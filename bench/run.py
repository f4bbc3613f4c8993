"""`make bench`: print the benchmark figures — the firmware under MicroPython, a virtual
station's wake with its upload (bench/station_wake.py), then the server (bench/server.py;
BENCH_SCALE=0.05 for a quick run)."""

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MPY = str(Path(sys.executable).with_name("micropython"))
SCRIPT = str(ROOT / "bench" / "firmware_cycle.py")
FIRMWARE = str(ROOT / "firmware")


def run_mpy(mode: str, firmware: str = FIRMWARE,
            heap_kib: int | None = None) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="mizumori-bench-") as work:
        cmd = [MPY] + (["-X", f"heapsize={heap_kib}K"] if heap_kib else [])
        return subprocess.run(cmd + [SCRIPT, firmware, work, mode], capture_output=True,
                              text=True, timeout=600)


def compiled_firmware(dest: Path) -> str:
    """firmware/ compiled with mpy-cross, as a release installs it on the board."""
    for src in Path(FIRMWARE).rglob("*.py"):
        out = dest / src.relative_to(FIRMWARE).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(Path(sys.executable).with_name("mpy-cross")), "-o", str(out),
                        str(src)], check=True)
    return str(dest)


def smallest_heap_kib(firmware: str) -> int:
    """Smallest MicroPython heap (KiB) in which a whole wake (imports included) completes."""
    lo, hi = 4, 512
    while lo < hi:
        mid = (lo + hi) // 2
        ok = "wake ok" in run_mpy("one", firmware, mid).stdout
        lo, hi = (lo, mid) if ok else (mid + 1, hi)
    return lo


def main() -> None:
    proc = run_mpy("all")
    if proc.returncode:
        sys.exit(proc.stderr)
    figures = dict(line.split() for line in proc.stdout.splitlines() if line.strip())
    print("Firmware under the MicroPython unix port (host CPU; an ESP32 at 240 MHz is slower)")
    median_ms = int(figures["cycle_cpu_us_median"]) / 1000
    p90_ms = int(figures["cycle_cpu_us_p90"]) / 1000
    print(f"  wake cycle CPU time, median      {median_ms:8.2f} ms")
    print(f"  wake cycle CPU time, 90th pct    {p90_ms:8.2f} ms")
    print(f"  heap allocated in one cycle      {int(figures['cycle_heap_alloc_bytes']):8d} B")
    with tempfile.TemporaryDirectory(prefix="mizumori-mpy-") as mpy_dir:
        heap_src = smallest_heap_kib(FIRMWARE)
        heap_mpy = smallest_heap_kib(compiled_firmware(Path(mpy_dir)))
    print(f"  smallest heap for a whole wake   {heap_mpy:8d} KiB  (.mpy; {heap_src} KiB from"
          " .py source; no upload; 64-bit port: objects are about 1.4x an ESP32's)")
    print(f"  flash programmed per reading     {figures['flash_programmed_bytes_per_reading']:>8} B"
          "  (littlefs, 4 KiB blocks, ack every 3rd)")
    print(f"  flash erased per reading         {figures['flash_erased_bytes_per_reading']:>8} B")
    print(f"  queue frame per reading          {figures['queue_frame_bytes_per_reading']:>8} B")
    print(f"  encoded record: level / full / status   {figures['record_bytes_level']} / "
          f"{figures['record_bytes_full']} / {figures['record_bytes_status']} B")


if __name__ == "__main__":
    main()
    for part in ("ram.py", "station_wake.py", "energy.py", "uncertainty.py", "ota.py",
                 "lorawan.py", "server.py", "dashboard.py"):
        subprocess.run([sys.executable, str(ROOT / "bench" / part)], check=True)
