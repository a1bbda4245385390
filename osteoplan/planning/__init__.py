"""osteoplan.planning: C2 dens screw trajectory planning (percutaneous anterior odontoid screw by default).

Public API
----------
* :func:`osteoplan.planning.planner.make_plan` (volume, label map, dens landmarks) and
  :func:`osteoplan.planning.planner.plan_from_anatomy` (output of ``build_anatomy``) -> :class:`Plan`.
* :mod:`osteoplan.planning.model`: the plan as data (:class:`Plan`, :class:`Trajectory`,
  :class:`ClearanceCheck`...), schema-versioned JSON (:func:`save_plan`, :func:`load_plan`,
  ``plan.schema.json``).
* :mod:`osteoplan.planning.protocol`: procedure protocols as validated TOML
  (``protocols/c2-dens-anterior.toml``, the default; ``protocols/c2-dens-lateral.toml``).
* :mod:`osteoplan.planning.search` / :mod:`osteoplan.planning.kernel`: the dense, numba-compiled
  candidate search; :mod:`osteoplan.planning.fields`: distance maps on the region of interest.
* :mod:`osteoplan.planning.guidance` (C-arm, gantry), :mod:`osteoplan.planning.cement` (PMMA, leaks).
* :mod:`osteoplan.planning.verdict`: the plan's one verdict (:func:`compute_verdict`, stored by ``make_plan``;
  :func:`verdict_of` for plans written without one), printed as it is by every face.
* ``osteoplan plan`` / ``osteoplan demo`` (:mod:`osteoplan.faces.cli.plan`).
"""

__all__ = ["SCHEMA_VERSION", "ClearanceCheck", "Plan", "Trajectory", "load_plan", "save_plan"]


def __getattr__(name: str):
    """The plan model's names, imported on first use (PEP 562): importing a submodule of the package (e.g.
    :mod:`osteoplan.planning.protocol_names` while the command line builds its ``--help``) does not build the
    pydantic plan models."""
    if name in __all__:
        from osteoplan.planning import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
