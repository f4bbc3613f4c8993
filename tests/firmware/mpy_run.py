# Runs tests/firmware/test_*.py under the MicroPython unix port, the same files pytest runs.
# Usage: micropython tests/firmware/mpy_run.py [name-filter]
import os
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../../firmware")
sys.path.insert(0, HERE)

import support  # noqa: E402


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    support.rmtree(support.TMP_BASE)
    passed = failed = skipped = 0
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        mod = __import__(fname[:-3])
        for name in sorted(dir(mod)):
            if not name.startswith("test_") or only not in fname[:-3] + "::" + name:
                continue
            label = "%s::%s" % (fname, name)
            try:
                getattr(mod, name)()
                passed += 1
                print("PASS", label)
            except support.Skip as e:
                skipped += 1
                print("SKIP", label, "-", e)
            except Exception as e:
                failed += 1
                print("FAIL", label)
                sys.print_exception(e)
    print("micropython: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed or not passed else 0)


main()
