"""`search.strategy: random`: the baseline. After the common generation 0, every genome is
drawn uniformly within the bounds; nothing is learned from the scores."""

from __future__ import annotations

from jradievo_ray.search.strategy import Bounded, Scored


class RandomSearch(Bounded):
    def ask(self) -> list[list[float]]:
        return [self.random_genome() for _ in range(self.config.population)]

    def tell(self, scored: list[Scored]) -> None:
        """Random search learns nothing from a generation."""

    def child(self, population: list) -> list[float]:
        """Steady-state dispatch: the next genome, whatever the population holds."""
        return self.random_genome()

    def state(self) -> None:
        return None

    def restore(self, state: None) -> None:
        """Random search has no state beyond the RNG."""
