"""Start a command and report its wall time and its own peak RSS: ``launch.py OUT.json CMD ...``.

Why a launcher: on Linux a child's ``ru_maxrss`` starts at the RSS of the process
it was forked from (the kernel keeps the old memory's high-water mark at
``exec``), so children of the benchmark runner, which holds torch and a model,
all reported the runner's own peak. This small process forks the command
instead, so the figure is the command's own. Imports only the standard library.
"""

import json
import os
import subprocess
import sys
import time


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    env = dict(os.environ)
    env["SIAMGUI_BENCH_T0"] = repr(time.time())  # for probes that time their own events
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env)
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    with open(out, "w") as fh:
        json.dump({"rc": rc, "wall_s": wall, "maxrss_kb": rusage.ru_maxrss}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
