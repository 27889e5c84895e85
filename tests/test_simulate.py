"""The simulator: each region's data comes from its own name, never from another region's."""

import datetime as dt

from pipelines.simulation.simulate import SimulationConfig, generate_day, region_seed


def test_a_new_region_simulates_its_own_data_not_another_regions():
    """Two regions the shipped configuration does not name get different events (both used to
    fall back to one shared seed), and each is the same on every call."""
    cfg = SimulationConfig(dt.date(2026, 9, 1), dt.date(2026, 9, 1), events_per_day=200)
    day = dt.date(2026, 9, 1)
    za, br = (generate_day(cfg, r, day, "USD") for r in ("za", "br"))
    assert region_seed("za") != region_seed("br")
    assert list(za["sku"]) != list(br["sku"]) or list(za["quantity"]) != list(br["quantity"])
    again = generate_day(cfg, "za", day, "USD")
    assert list(again["event_id"]) == list(za["event_id"])
