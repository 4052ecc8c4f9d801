"""What bounds a throughput run on a few cores: CPU seconds per route of each process, and the ceiling.

Every process of a run (the router replicas, the LM simulator, the load generator) spends CPU
on each route. On ``cores`` cores nothing can answer more than ``cores / (sum of them)`` routes
per second, and ``n`` single-threaded replicas no more than ``n / (router CPU per route)``:
the lower of the two is the run's ceiling. The ratio of two runs' ceilings is the best ratio
their throughputs could show on an otherwise idle machine.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CpuRun"]


@dataclass(frozen=True, slots=True)
class CpuRun:
    """One throughput run: routes answered, wall time, CPU seconds per process, machine-wide CPU."""

    replicas: int
    routes: int
    lm_calls: int
    wall_s: float
    router_s: float  # all replicas together
    simulator_s: float
    client_s: float
    machine_busy_s: float  # every process on the machine, ours or not
    cores: int

    @property
    def per_second(self) -> float:
        return self.routes / self.wall_s

    def ms_per_route(self, seconds: float) -> float:
        return 1000 * seconds / max(1, self.routes)

    @property
    def others_s(self) -> float:
        """CPU seconds of processes outside the run (other work on a shared machine)."""
        return max(0.0, self.machine_busy_s - self.router_s - self.simulator_s - self.client_s)

    @property
    def ceiling(self) -> float:
        """Routes/s this run's CPU per route allows on an idle machine of ``cores`` cores."""
        return self._ceiling(self.simulator_s)

    @property
    def ceiling_without_simulator(self) -> float:
        """The ceiling if the LM (the simulator) ran elsewhere, as a real provider does."""
        return self._ceiling(0.0)

    def _ceiling(self, simulator_s: float) -> float:
        total = self.router_s + simulator_s + self.client_s
        per_core = self.routes / max(total, 1e-9)
        per_replica = self.routes / max(self.router_s, 1e-9)
        return min(self.cores * per_core, self.replicas * per_replica)

    def report(self) -> str:
        """One line: routes/s, CPU ms per route of each part, what else ran, the ceiling."""
        calls = self.lm_calls / max(1, self.routes)
        return (
            f"{self.replicas} replica(s): {self.per_second:.1f} routes/s, {calls:.1f} LM calls per route; "
            f"CPU ms per route: router "
            f"{self.ms_per_route(self.router_s):.1f}, simulator {self.ms_per_route(self.simulator_s):.1f}, "
            f"load generator {self.ms_per_route(self.client_s):.1f}; other processes used "
            f"{self.others_s / self.wall_s:.2f} of {self.cores} cores; ceiling {self.ceiling:.1f} routes/s"
        )
