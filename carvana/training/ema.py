"""An exponential moving average of the weights: a copy of the model that follows the trained one slowly, updated
after every optimizer step. It averages out the last steps' noise (the val dice of the raw weights swings from
one epoch to the next at a high learning rate), so it is the model that is scored and kept."""

import copy

import torch
from torch import nn


class Ema:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move towards `model`'s weights; early on faster (decay (1 + n) / (10 + n)), so it starts near them."""
        self.updates += 1
        weight = 1 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.model.parameters(), model.parameters()):
            average.lerp_(current, weight)
        for average, current in zip(self.model.buffers(), model.buffers()):  # BatchNorm statistics: the latest
            average.copy_(current)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = state["updates"]
