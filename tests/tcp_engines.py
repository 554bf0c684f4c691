"""Both engines on one --socket tcp run: the fast engine's TCP tests compare their JSON."""

from skbsim.fast import simulate_engine
from skbsim.sim import RunConfig, simulate

#: the tests' starting point: one bulk flow without timestamps on 6.18 (each test file adds its driver)
TCP_RUN = dict(kernel="6.18", options={}, socket="tcp", traffic="tcp-bulk:ts=0", tcp="bulk", flows=1)


def run_both(config: dict) -> tuple[dict, dict, str | None]:
    """(the reference engine's JSON, the fast engine's, why the fast engine handed the run over or None)."""
    reference, _ = simulate(RunConfig(**config))
    fast, _, why = simulate_engine(RunConfig(**config), "fast")
    # the leak check: every page, slab object and skb given back at the end of the run, on both engines
    assert reference["leaks"]["clean"] and fast["leaks"]["clean"], (reference["leaks"], fast["leaks"])
    return reference, fast, why


def same(reference: dict, fast: dict) -> bool:
    """The same JSON, key for key and in the same order, but for the engine's name."""
    return {**fast, "engine": "reference"} == reference and list(reference) == list(fast)
