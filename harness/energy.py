"""Energy and device-memory readings: NVML where a GPU has it, RAPL on CPUs that expose it.

Sources, in order of preference:

1. `nvml_energy_counter`: the GPU's total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`,
   millijoules since driver load, Volta and newer), read before and after every step.
2. `nvml_power_sampling`: `nvmlDeviceGetPowerUsage` sampled in a background thread and
   integrated over the time spent inside steps; marked as sampled in the record.
3. `rapl`: CPU package energy from /sys/class/powercap (intel-rapl), for CPU cells.

Where none exists, energy is `None` with the reason. Never zero, never a TDP guess.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

POWERCAP = Path("/sys/class/powercap")
SAMPLE_INTERVAL_S = 0.02


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

    def before_step(self) -> None:
        if self.source == "nvml_energy_counter":
            self._before = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0
        elif self.source == "rapl":
            self._before = [int(path.read_text()) for path, _ in self._rapl]

    def after_step(self) -> float | None:
        """Joules of the step just ended (None where they are not known per step)."""
        if self.source == "nvml_energy_counter":
            spent = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0 - self._before
        elif self.source == "rapl":
            spent = 0.0
            for (path, wrap), start in zip(self._rapl, self._before):
                end = int(path.read_text())
                spent += ((end - start) % wrap) / 1e6
        else:
            return None
        self.joules += spent
        return spent


class Sampler:
    """Background thread: peak NVML device memory, and power integrated while in a step."""

    def __init__(self, energy: EnergyMeter, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.energy, self.interval = energy, interval
        self.in_step = False
        self.sampled_joules = 0.0
        self.peak_device_used: int | None = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-meter-sampler", daemon=True)

    @property
    def needed(self) -> bool:
        return self.energy._handle is not None

    def start(self) -> None:
        if self.needed:
            self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(self.interval):
            now = time.perf_counter()
            used = self.energy.device_used_bytes()
            if used is not None:
                self.peak_device_used = max(used, self.peak_device_used or 0)
            if self.in_step and self.energy.source == "nvml_power_sampling":
                watts = self.energy.power_watts()
                if watts is not None:
                    self.sampled_joules += watts * (now - last)
            self.samples += 1
            last = now
