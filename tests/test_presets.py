"""Search presets (`SearchPreset` in a family's record, `--preset`) and the budget's lower window
(`--min-fraction`), on arch-computed objectives: no supernet is trained here."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

import hwnas
from hwnas.families.registry import DEFAULT_SEARCH, Family, SearchPreset, get_family, register_family
from hwnas.spaces import get_space
from hwnas.subnet_search import Budget, BudgetError, Constraints, Costs, EvolutionSettings, SearchState
from hwnas.subnet_search.constraints import check_feasible, check_window
from hwnas.subnet_search.evolution import Evolution
from hwnas.subnet_search.operators import Operators, window_witness
from hwnas.training.evaluate import Score
from tests.helpers import assert_one_line_error, hwnas_in_process


def evolve(space, budget: Budget, settings: EvolutionSettings) -> Evolution:
    """An evolution scored by parameters (no supernet), kept within `settings.min_fraction` of `budget`."""
    costs = Costs(space)
    constraints = Constraints(budget, costs, settings.min_fraction)
    anchor = check_feasible(Constraints(budget, costs)).anchor
    score = lambda archs: [Score(float(a.params()), 0.0) for a in archs]  # noqa: E731
    return Evolution(space, settings, constraints, costs, anchor, score, SearchState())


def test_paper_presets_are_the_releases():
    resnas = get_family("resnas").search_preset("paper")  # yilunliao/vit-search evo_search.py + tiny.sh
    assert (resnas.population, resnas.generations, resnas.initial, resnas.parents, resnas.mutations) == (
        150,
        20,
        500,
        75,
        75,
    )
    assert (resnas.mutation_prob, resnas.resample_prob, resnas.toggled) == (0.3, 0.3, ("skip_",))
    assert (resnas.initial_sampling, resnas.min_fraction, resnas.strategy) == ("pruned", 0.975, "evolution")
    assert EvolutionSettings.from_preset("paper", resnas).planned == 500 + 19 * 150 == 3350
    autoformer = get_family("autoformer").search_preset("paper")  # microsoft/Cream AutoFormer/evolution.py
    assert (autoformer.population, autoformer.generations, autoformer.parents, autoformer.mutations) == (50, 20, 10, 25)
    assert (autoformer.mutation_prob, autoformer.resample_prob, autoformer.min_fraction) == (0.2, 0.4, 18 / 23)
    assert EvolutionSettings.from_preset("paper", autoformer).planned == 1000
    vitas = get_family("vitas").search_preset("paper")  # xiusu/ViTAS vit_tiny_search_1G_search.yaml
    assert (vitas.population, vitas.generations, vitas.min_fraction) == (50, 40, 0.9)
    glit = get_family("glit").search_preset("paper")  # no released search: AutoFormer's, hierarchical
    assert glit == replace(autoformer, strategy="hierarchical")
    with pytest.raises(hwnas.HwnasError, match="has no search preset 'fast'; use default, paper"):
        get_family("resnas").search_preset("fast")
    with pytest.raises(hwnas.HwnasError, match="'default' search preset is hwnas's own"):
        register_family(replace(get_family("resnas"), search_presets={"default": DEFAULT_SEARCH}))
    assert isinstance(get_family("resnas"), Family)


def test_default_preset_is_the_search_as_before():
    for family in ("autoformer", "resnas", "vitas", "glit"):
        assert get_family(family).search_preset("default") == DEFAULT_SEARCH == SearchPreset()
    settings = EvolutionSettings.from_preset("default", DEFAULT_SEARCH, population=8, seed=3)
    assert settings == EvolutionSettings(population=8, seed=3)
    assert settings.to_dict() == {
        "strategy": "evolution",
        "population": 8,
        "generations": 20,
        "parents": 2,
        "mutation_prob": 0.2,
        "resample_prob": 0.4,
        "seed": 3,
        "retries": 10,
        "high_level_share": 0.5,
    }  # what saved searches hold: they resume as before
    assert (settings.initial_size, settings.mutation_count, settings.planned) == (8, 4, 160)


def test_a_smaller_population_keeps_the_presets_shares():
    paper = get_family("resnas").search_preset("paper")
    small = EvolutionSettings.from_preset("paper", paper, population=12, generations=3)
    assert (small.initial, small.parents, small.mutations, small.planned) == (40, 6, 6, 40 + 2 * 12)
    given = EvolutionSettings.from_preset("paper", paper, population=12, parents=3, initial=5, min_fraction=0.5)
    assert (given.initial, given.parents, given.mutations, given.min_fraction) == (5, 3, 6, 0.5)
    assert given.to_dict()["preset"] == "paper" and given.to_dict()["toggled"] == ["skip_"]


def test_resnas_paper_search_keeps_every_child_in_the_window():
    space = get_space("resnas-digits")
    settings = EvolutionSettings.from_preset(
        "paper", get_family("resnas").search_preset("paper"), population=12, generations=3
    )
    evo = evolve(space, Budget(flops_g=0.007), settings)
    state = evo.run()
    assert len(state.records) == settings.planned == 64 and not state.notes
    assert len([r for r in state.records if r.generation == 0]) == 40
    assert all(0.975 * 0.007 <= r.costs["flops_g"] <= 0.007 for r in state.records)
    assert {r.origin.split("+")[0] for r in state.records} == {"random", "mutation", "crossover"}
    assert len({r.arch.digest for r in state.records}) == 64


def test_pruned_draws_and_toggled_flags():
    space = get_space("resnas-digits")
    constraints = Constraints(Budget(flops_g=0.007), Costs(space), 0.975)
    ops = Operators(space, random.Random(0), [g.name for g in space.genes], toggled=("skip_",))
    for _ in range(10):
        drawn = ops.pruned_sample(space.largest(), constraints)
        assert drawn is None or constraints.fits(drawn)  # pruned into the budget (the window is the caller's)
    skips = [g.name for g in space.genes if g.name.startswith("skip_")]
    flags = Operators(space, random.Random(0), skips, mutation_prob=1.0, toggled=("skip_",))
    parent = space.largest()  # nothing skipped
    child = flags.mutate(parent)
    assert all(set(child.genes[name]) == {1} for name in skips)  # every flag flipped, not redrawn
    assert all(set(flags.sample(parent).genes[name]) <= {0, 1} for _ in range(5) for name in skips)


@pytest.mark.parametrize("budget", [Budget(params_m=0.4), Budget(flops_g=0.025)])
def test_min_fraction_window_on_any_budget(budget):
    space = get_space("autoformer-digits")
    evo = evolve(space, budget, EvolutionSettings(population=10, generations=3, parents=3, min_fraction=0.9))
    ((metric, limit),) = budget.limits().items()
    records = evo.run().records
    assert len(records) == 30 and all(0.9 * limit <= r.costs[metric] <= limit for r in records)
    constraints = Constraints(budget, Costs(space), 0.9)
    grown = Operators(space, random.Random(0), [g.name for g in space.genes]).grow(space.smallest(), constraints)
    assert grown is not None and constraints.admits(grown)  # repaired up into the window


def test_a_window_no_arch_reaches_is_refused():
    space = get_space("autoformer-digits")
    costs = Costs(space)
    wide = Constraints(Budget(params_m=10.0), costs, 0.5)
    with pytest.raises(BudgetError, match="`min_fraction` 0.5 keeps archs of at least 5 M params .* costliest arch"):
        check_window(wide, check_feasible(Constraints(Budget(params_m=10.0), costs)))
    narrow = Constraints(Budget(params_m=0.4), costs, 0.999)
    check_window(narrow, check_feasible(narrow))  # below the costliest: for the search to find
    assert window_witness(space, Constraints(Budget(params_m=0.4), costs, 0.9)) is not None


def test_bad_min_fraction_is_one_line(tmp_path):
    run = str(tmp_path / "run")  # refused before the run is read
    cases = [
        (["--min-fraction", "0", "--params-m", "1"], ["--min-fraction", "0<x<=1"]),
        (["--min-fraction", "1.5", "--params-m", "1"], ["--min-fraction", "0<x<=1"]),
        (["--min-fraction", "0.9"], ["--min-fraction 0.9 needs a budget", "--flops-g"]),
    ]
    for args, fragments in cases:
        assert_one_line_error(hwnas_in_process("search", "--run", run, *args), *fragments)
    with pytest.raises(BudgetError, match=r"`min_fraction` must be in \(0, 1\]"):
        hwnas.search(run, params_m=1.0, min_fraction=-0.1)
