"""Energy and device-memory readings: NVML where a GPU has it, RAPL on CPUs that expose it.

Sources, in order of preference:

1. `nvml_energy_counter`: the GPU's total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`,
   millijoules since driver load, Volta and newer).
2. `nvml_power_sampling`: `nvmlDeviceGetPowerUsage` (watts averaged by the driver).
3. `rapl`: CPU package energy from /sys/class/powercap (intel-rapl), for CPU cells.

Where none exists, energy is `None` with the reason. Never zero, never a TDP guess.

How joules are attributed to steps. RAPL files are cheap to read and fine-grained, so they
are read before and after every step. NVML is neither: on an H100
(`python -m tests.bench.nvml_energy_check`) one counter read took 2.8 ms (median; p90 5.7 ms) and the counter
moved only every 100 ms. Reading it around every step made a 2.5-ms MLP step 7x slower than
a bare loop and attributed 2,730 J to 5.7 s of steps (478 W) while the whole 27-s window
used 3,433 J (126 W). So NVML is read by the background `Sampler` only, every
`SAMPLE_INTERVAL_S`, and each interval's energy is split by the fraction of the interval the
main thread spent inside steps (`StepClock`): exact when steps and everything else
(evaluation, data loading) alternate more slowly than the counter updates, and equal power
in both assumed when they alternate faster. The whole window's energy, steps and
everything between them, is recorded beside it as `loop_joules`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

POWERCAP = Path("/sys/class/powercap")
SAMPLE_INTERVAL_S = 0.05  # NVML reads cost ~3 ms each on an H100; its counter moves every 100 ms


def nvml_handle(device: torch.device) -> tuple[Any, Any, str | None]:
    """(pynvml module, handle) for a CUDA device, or (None, None, why not)."""
    if device.type != "cuda":
        return None, None, "the cell runs on the CPU, which NVML does not meter"
    try:
        import pynvml
    except ImportError:
        return None, None, "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
        index = device.index if device.index is not None else torch.cuda.current_device()
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        try:
            handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
        except pynvml.NVMLError:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        return pynvml, handle, None
    except pynvml.NVMLError as exc:
        return None, None, f"NVML is unavailable ({exc})"


def rapl_files() -> list[tuple[Path, int]]:
    """(energy_uj file, wrap-around range) of every top-level RAPL package domain."""
    found = []
    for domain in sorted(POWERCAP.glob("intel-rapl:*")):
        if domain.name.count(":") == 1 and (domain / "energy_uj").is_file():
            try:
                wrap = int((domain / "max_energy_range_uj").read_text())
                int((domain / "energy_uj").read_text())  # readable at all? (often root-only)
            except (OSError, ValueError):
                continue
            found.append((domain / "energy_uj", wrap))
    return found


@dataclass
class EnergyMeter:
    """Accumulates joules spent inside steps, from the best source this device has."""

    device: torch.device
    source: str | None = None
    reason: str | None = None
    joules: float = 0.0
    _nvml: Any = None
    _handle: Any = None
    _rapl: list[tuple[Path, int]] = field(default_factory=list)
    _before: float | list[int] | None = None

    def __post_init__(self) -> None:
        why = None
        if self._handle is None:  # tests inject a recorded NVML stand-in instead
            self._nvml, self._handle, why = nvml_handle(self.device)
        if self._handle is not None:
            try:
                self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
                self.source = "nvml_energy_counter"
            except self._nvml.NVMLError:
                try:
                    self._nvml.nvmlDeviceGetPowerUsage(self._handle)
                    self.source = "nvml_power_sampling"
                except self._nvml.NVMLError as exc:
                    self.reason = f"this GPU reports neither energy nor power through NVML ({exc})"
        elif self.device.type == "cpu" and (files := rapl_files()):
            self._rapl, self.source = files, "rapl"
        else:
            self.reason = f"no energy counter: {why}; and no readable RAPL counter under {POWERCAP}"

    @property
    def available(self) -> bool:
        return self.source is not None

    def power_watts(self) -> float | None:
        if self._handle is None:
            return None
        try:
            return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        except self._nvml.NVMLError:
            return None

    def device_used_bytes(self) -> int | None:
        if self._handle is None:
            return None
        try:
            return int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used)
        except self._nvml.NVMLError:
            return None

    @property
    def per_step(self) -> bool:
        """True where the counter is cheap and fine enough to read around every step (RAPL)."""
        return self.source == "rapl"

    def counter_joules(self) -> float | None:
        """The NVML energy counter in joules (None where this GPU has no counter)."""
        if self.source != "nvml_energy_counter":
            return None
        try:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0
        except self._nvml.NVMLError:
            return None

    def before_step(self) -> None:
        if self.per_step:
            self._before = [int(path.read_text()) for path, _ in self._rapl]

    def after_step(self) -> float | None:
        """Joules of the step just ended (None where they are not known per step: see the module doc)."""
        if not self.per_step:
            return None
        spent = 0.0
        for (path, wrap), start in zip(self._rapl, self._before):
            end = int(path.read_text())
            spent += ((end - start) % wrap) / 1e6
        self.joules += spent
        return spent


class StepClock:
    """Seconds spent inside steps so far, readable from another thread at any moment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished = 0.0
        self._since: float | None = None

    def start(self, now: float) -> None:
        with self._lock:
            self._since = now

    def stop(self, now: float) -> None:
        with self._lock:
            if self._since is not None:
                self._finished += now - self._since
            self._since = None

    def total(self, now: float) -> float:
        with self._lock:
            return self._finished + (now - self._since if self._since is not None else 0.0)


class Sampler:
    """Background thread: peak NVML device memory, and NVML energy attributed to steps.

    Every `interval` it reads the device memory in use and the energy counter (or the
    power), and splits the energy of the interval since the last reading by the share
    of it that `clock` says was spent inside steps (see the module docstring).
    """

    def __init__(self, energy: EnergyMeter, clock: StepClock, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.energy, self.clock, self.interval = energy, clock, interval
        self.step_joules = 0.0  # attributed to time inside steps
        self.loop_joules = 0.0  # the whole window since start
        self.peak_device_used: int | None = None
        self.samples = 0
        self._last: tuple[float, float, float | None] | None = None  # (wall, in-step seconds, counter J)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-meter-sampler", daemon=True)

    @property
    def needed(self) -> bool:
        return self.energy._handle is not None

    def start(self) -> None:
        if self.needed:
            now = time.perf_counter()
            self._last = (now, self.clock.total(now), self.energy.counter_joules())
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the last interval, so no step's energy is left out."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """One reading: memory peak, and the energy of the interval since the last one."""
        used = self.energy.device_used_bytes()
        if used is not None:
            self.peak_device_used = max(used, self.peak_device_used or 0)
        now = time.perf_counter()
        in_steps = self.clock.total(now)
        counter = self.energy.counter_joules()
        if self._last is not None:
            last_wall, last_in_steps, last_counter = self._last
            wall, stepped = now - last_wall, in_steps - last_in_steps
            if self.energy.source == "nvml_energy_counter" and counter is not None and last_counter is not None:
                spent = counter - last_counter
            elif self.energy.source == "nvml_power_sampling" and (watts := self.energy.power_watts()) is not None:
                spent = watts * wall
            else:
                spent = 0.0
            self.loop_joules += spent
            if wall > 0:
                self.step_joules += spent * min(1.0, stepped / wall)
        self._last = (now, in_steps, counter)
        self.samples += 1
