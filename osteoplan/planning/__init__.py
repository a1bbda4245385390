"""osteoplan.planning (see docs/design)."""
