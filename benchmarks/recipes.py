"""The recipes measured: params.yaml's defaults, the original tutorial's `seed` preset, the `cpu` preset and `cpu` with
the `edges` preset over it (the learned boundary refiner)."""

from dataclasses import dataclass

import yaml

from benchmarks.dataset import REPO
from carvana.core.params import Params, parse
from carvana.preset import load_preset, merged

SEED_STEPS = 2  # the seed recipe trains at about 0.7 img/s on a 2-core CPU: 2 batches of 16 take ~45 s


@dataclass(frozen=True)
class Recipe:
    name: str
    params: Params
    steps: int | None  # batches per timed training epoch; None: every full batch of the images

    @property
    def size(self) -> tuple[int, int]:
        return self.params.prepare.image_height, self.params.prepare.image_width

    @property
    def network(self) -> str:
        features = "-".join(map(str, self.params.train.model.features))
        return f"{self.name} {features} U-Net at {self.size[0]}x{self.size[1]}"

    def shrunk(self, size: tuple[int, int], batch_size: int, steps: int) -> "Recipe":
        """The same network at a smaller size and batch, for smoke runs."""
        prepare = self.params.prepare.model_copy(update={"image_height": size[0], "image_width": size[1]})
        train = self.params.train.model_copy(update={"batch_size": batch_size})
        return Recipe(self.name, self.params.model_copy(update={"prepare": prepare, "train": train}), steps)


def recipes() -> tuple[Recipe, Recipe, Recipe, Recipe]:
    """(default, seed, cpu, cpu edges), each preset applied over params.yaml as `dvc exp run` would."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    default = Recipe("default", parse(base), steps=None)
    seed = Recipe("seed", parse(merged(base, load_preset("seed"))), steps=SEED_STEPS)
    cpu = merged(base, load_preset("cpu"))
    edges = Recipe("cpu edges", parse(merged(cpu, load_preset("edges"))), steps=None)
    return default, seed, Recipe("cpu", parse(cpu), steps=None), edges
