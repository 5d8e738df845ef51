"""Child process of the memory comparison: repeat the native calls, report RSS.

Run by ``bench/run.py`` with the realm's KRB5_CONFIG in the environment; reads
one JSON object from stdin (so the password never appears on a command line)
and prints one JSON object. Only ``pamkrb._native`` is imported, so the
resident set is the interpreter plus the extension and what it allocates.

Two phases, one after the other, so growth can be attributed:
  1. kinit + inspect: ``obtain_ticket`` (in-process kinit, atomic install with
     owner and mode) followed by ``inspect_ticket``, per cycle;
  2. PAM: ``pam_authenticate`` (+ account check) on the given service, on a
     small thread pool because pam_unix's password hash takes ~30 ms.
RSS (VmRSS) is read at every checkpoint.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time

from pamkrb import _native


def vm_rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def sample(phase: str, cycles: int, started: float) -> dict:
    return {
        "phase": phase,
        "cycles": cycles,
        "rss_kib": vm_rss_kib(),
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "seconds": round(time.perf_counter() - started, 2),
    }


def kinit_cycles(job: dict, started: float) -> list[dict]:
    samples = []
    done = 0
    for checkpoint in job["kinit_checkpoints"]:
        while done < checkpoint:
            _native.obtain_ticket(job["principal"], job["keytab"], job["ccache"], uid=job["uid"], gid=job["gid"])
            _native.inspect_ticket(job["ccache"], uid=job["uid"])
            done += 1
        samples.append(sample("kinit+inspect", done, started))
    return samples


def pam_cycles(job: dict, started: float) -> list[dict]:
    samples = []
    password = job["password"].encode()
    checkpoints = job["pam_checkpoints"]
    done = 0
    lock = threading.Lock()
    # The same threads for all checkpoints, and nothing allocated per cycle
    # but the password copy: threads created between checkpoints (their stacks
    # and malloc arenas) or a backlog of futures would look like growth.
    barrier = threading.Barrier(job["pam_threads"] + 1)

    def worker() -> None:
        nonlocal done
        for checkpoint in checkpoints:
            while True:
                with lock:
                    if done >= checkpoint:
                        break
                    done += 1
                # A fresh bytearray each time: the native layer zeroes it.
                _native.pam_authenticate(job["service"], job["username"], bytearray(password))
            barrier.wait()  # checkpoint reached
            barrier.wait()  # sampled; go on

    threads = [threading.Thread(target=worker) for _ in range(job["pam_threads"])]
    for thread in threads:
        thread.start()
    for checkpoint in checkpoints:
        barrier.wait()
        samples.append(sample("pam", checkpoint, started))
        barrier.wait()
    for thread in threads:
        thread.join()
    return samples


def main() -> None:
    job = json.load(sys.stdin)
    started = time.perf_counter()
    samples = [sample("start", 0, started)]
    samples += kinit_cycles(job, started)
    samples += pam_cycles(job, started)
    json.dump({"samples": samples}, sys.stdout)


if __name__ == "__main__":
    main()
