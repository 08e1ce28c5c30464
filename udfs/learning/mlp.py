"""A small multi-layer perceptron in torch (``model.kind=mlp``): ReLU hidden layers with dropout, trained
with Adam or SGD for ``epochs`` passes of mini-batches over each closed window.

Parameters and optimizer moments pickle as ``state_dict`` bytes (the Flink state), so a restored
learner goes on exactly where it stopped; snapshots carry the network's ``state_dict`` as base64.

Initial weights and dropout masks come from the learner's own generators, never torch's global one:
in thread mode every operator of a TaskManager shares one interpreter, and a predictor decoding a
snapshot (which builds a network) draws from the global generator while the trainer trains, so
masks drawn from it made training depend on timing.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.uniform(-1, 1, size=(4000, 2))
>>> y = (x[:, 0] * x[:, 1] > 0).astype(float)  # XOR: no line separates it
>>> learner = MlpLearner.initial(n_inputs=2, hidden_units=(16,), dropout=0.0, seed=0)
>>> learner.fit_design(x, y, TrainParams(learning_rate=0.01, epochs=30, batch_size=64))
>>> float(np.mean((learner.predict_design(x) > 0.5) == y)) > 0.9
True
>>> copy = MlpLearner.from_parameters(learner.parameters())
>>> bool(np.array_equal(copy.predict_design(x), learner.predict_design(x)))
True
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np

from udfs.learning.devices import reproducible_torch, resolve_device
from udfs.learning.learner import TrainParams
from udfs.learning.logistic import sigmoid

torch = reproducible_torch()
nn = torch.nn


class SeededDropout(nn.Module):
    """``nn.Dropout`` whose masks come from ``generator`` (set per fit), not from the global generator."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)


class MlpLearner:
    kind = "mlp"

    def __init__(self, n_inputs: int, hidden_units: tuple[int, ...], dropout: float, device: str = "cpu") -> None:
        self.n_inputs, self.hidden_units, self.dropout = n_inputs, tuple(hidden_units), dropout
        self.device = resolve_device(device)
        layers: list[nn.Module] = []
        width = n_inputs
        for units in self.hidden_units:
            layers += [nn.Linear(width, units), nn.ReLU(), SeededDropout(dropout)]
            width = units
        self.net = nn.Sequential(*layers, nn.Linear(width, 1)).to(self.device)
        self.optimizer: torch.optim.Optimizer | None = None

    @classmethod
    def initial(cls, n_inputs: int, hidden_units: tuple[int, ...], dropout: float, seed: int,
                device: str = "cpu") -> MlpLearner:
        """A network with torch's default initialisation (uniform within 1/sqrt(fan_in)), drawn from ``seed``."""
        learner = cls(n_inputs, hidden_units, dropout, device)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in learner.net:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    for tensor in (layer.weight, layer.bias):
                        tensor.copy_(torch.rand(tensor.shape, generator=generator) * 2 * bound - bound)
        return learner

    def predict_design(self, x: np.ndarray) -> np.ndarray:
        """One numpy forward pass in float64 on the CPU (dropout off). A float32 product's rounding
        depends on how many rows a kernel gets at once; in float64 it stays far below the 1e-9 at
        which the job, library mode and the pyfunc model must agree, however rows are batched."""
        h = x
        for module in self.net:
            if isinstance(module, nn.Linear):
                h = h @ module.weight.detach().cpu().double().numpy().T + module.bias.detach().cpu().double().numpy()
            elif isinstance(module, nn.ReLU):
                h = np.maximum(h, 0.0)
        return sigmoid(h[:, 0])

    def fit_design(self, x: np.ndarray, y: np.ndarray, params: TrainParams) -> None:
        optimizer = self._optimizer(params)
        inputs, labels = self._tensor(x), torch.as_tensor(y, dtype=torch.float32, device=self.device)
        loss_fn = nn.BCEWithLogitsLoss()
        order_rng = torch.Generator().manual_seed(params.seed)
        self._set_masks(torch.Generator(device=self.device).manual_seed(params.seed))
        self.net.train()
        for _ in range(params.epochs):
            order = torch.randperm(len(x), generator=order_rng).to(self.device)
            for idx in order.split(params.batch_size):
                optimizer.zero_grad(set_to_none=True)
                loss_fn(self.net(inputs[idx]).squeeze(1), labels[idx]).backward()
                optimizer.step()
        self._set_masks(None)

    def _set_masks(self, generator: torch.Generator | None) -> None:
        for module in self.net:
            if isinstance(module, SeededDropout):
                module.generator = generator

    def _optimizer(self, params: TrainParams) -> torch.optim.Optimizer:
        """The learner's optimizer (its moments carry over windows) at this window's step size."""
        if self.optimizer is None:
            make = torch.optim.SGD if params.optimizer == "sgd" else torch.optim.Adam
            self.optimizer = make(self.net.parameters(), lr=params.step_size, weight_decay=params.l2)
        for group in self.optimizer.param_groups:
            group["lr"], group["weight_decay"] = params.step_size, params.l2
        return self.optimizer

    def reset_optimizer(self) -> None:
        self.optimizer = None

    def corrupt(self) -> None:
        with torch.no_grad():
            self.net[-1].weight.mul_(-3.0)

    def window_metrics(self) -> dict[str, float]:
        return {}

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32).to(self.device)

    def parameters(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_inputs": self.n_inputs, "hidden_units": list(self.hidden_units),
                "dropout": self.dropout, "state": base64.b64encode(_to_bytes(self.net.state_dict())).decode()}

    @classmethod
    def from_parameters(cls, params: dict[str, Any], device: str = "cpu") -> MlpLearner:
        learner = cls(int(params["n_inputs"]), tuple(params["hidden_units"]), float(params["dropout"]), device)
        learner.net.load_state_dict(_from_bytes(base64.b64decode(params["state"]), learner.device))
        return learner

    def __getstate__(self) -> dict[str, Any]:
        """Flink state: the network and the optimizer moments as ``state_dict`` bytes."""
        return {"shape": (self.n_inputs, self.hidden_units, self.dropout), "device": self.device,
                "net": _to_bytes(self.net.state_dict()),
                "optimizer": None if self.optimizer is None else _to_bytes(self.optimizer.state_dict()),
                "optimizer_kind": type(self.optimizer).__name__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(*state["shape"], device=state["device"])
        self.net.load_state_dict(_from_bytes(state["net"], self.device))
        if state["optimizer"] is not None:
            self.optimizer = getattr(torch.optim, state["optimizer_kind"])(self.net.parameters())
            self.optimizer.load_state_dict(_from_bytes(state["optimizer"], self.device))


def _to_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _from_bytes(data: bytes, device: str) -> dict[str, Any]:
    return torch.load(io.BytesIO(data), map_location=device, weights_only=True)
