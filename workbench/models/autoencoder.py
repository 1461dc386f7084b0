"""Autoencoders: anomaly detection by reconstruction error, and a VAE that also generates.

An :class:`Autoencoder` squeezes each row through a narrow code and back. Trained on normal data
(``fit((X, X))``), it reconstructs normal rows well and unusual ones badly, so
:func:`reconstruction_error` is an anomaly score: Analytics Zoo's fraud-detection use case.

A :class:`VAE` (variational autoencoder) learns a distribution over the code instead: its loss,
:class:`VAELoss`, is the reconstruction error plus the KL divergence of the code from a standard
normal, so decoding standard normal draws (:meth:`VAE.generate`) gives new samples, e.g. digits.
The Estimator hands a loss only the model output and the targets, so a VAE returns everything
its loss needs in one tensor: ``[decoder output | mean | log_var]`` (see :meth:`VAE.forward`).
"""

# No ``from __future__ import annotations`` here: torch.fx copies ``forward``'s annotations into
# the graphs ``Net`` builds, and a graph holding them as strings cannot be pickled for the workers.
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.arguments import check_positive_int
from workbench.models.base import BuiltinModel

__all__ = ["Autoencoder", "VAE", "VAELoss", "reconstruction_error", "LIKELIHOODS"]

#: How a VAE scores a reconstruction: "gaussian" (squared error, for real-valued data such as
#: standardised features) or "bernoulli" (cross-entropy, for data in [0, 1] such as grey images).
LIKELIHOODS = ("gaussian", "bernoulli")


class Autoencoder(BuiltinModel):
    """A fully connected autoencoder: ``encoder`` down to ``latent_dim``, ``decoder`` back up.

    Input: float rows ``(n, input_dim)``; output: their reconstructions, same shape. Train it
    to reproduce its input, ``fit((X, X))``, on (mostly) normal rows; score rows with
    :func:`reconstruction_error`. Default loss and metric: ``mse``.

    Args:
        input_dim: number of input features.
        hidden_layers: widths of the encoder's hidden layers (the decoder mirrors them).
        latent_dim: width of the code.

    Example::

        import workbench as wb
        import numpy as np
        import pandas as pd
        from sklearn.metrics import average_precision_score
        from workbench.datasets.tabular import card_transactions
        from workbench.models.autoencoder import Autoencoder, reconstruction_error

        wb.init()
        table = card_transactions(n=6000, fraud_rate=0.02)
        table[["amount", "distance_from_home_km"]] = np.log1p(table[["amount", "distance_from_home_km"]])
        X = pd.get_dummies(table.drop(columns="is_fraud"), dtype=float).to_numpy(np.float32)
        X = (X - X.mean(axis=0)) / X.std(axis=0)
        train, test = X[:4000][table["is_fraud"][:4000] == 0], X[4000:]
        estimator = Autoencoder(input_dim=X.shape[1]).estimator(lr=3e-3)
        estimator.fit((train, train), epochs=5, batch_size=128)
        scores = reconstruction_error(estimator, test)
        print("AUPRC", average_precision_score(table["is_fraud"][4000:], scores))
    """

    default_loss = "mse"
    default_metrics = ("mse",)

    def __init__(self, input_dim: int, hidden_layers: Sequence[int] = (32, 16), latent_dim: int = 8):
        input_dim, latent_dim = _size("input_dim", input_dim), _size("latent_dim", latent_dim)
        hidden_layers = _sizes("hidden_layers", hidden_layers)
        super().__init__(input_dim=input_dim, hidden_layers=hidden_layers, latent_dim=latent_dim)
        self.encoder = _dense_stack([input_dim, *hidden_layers, latent_dim])
        self.decoder = _dense_stack([latent_dim, *reversed(hidden_layers), input_dim])

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Reconstructions ``(n, input_dim)`` of ``rows`` ``(n, input_dim)``."""
        return self.decoder(self.encoder(rows))

    def reconstruction(self, output: np.ndarray) -> np.ndarray:
        """The reconstructed rows in a forward output (for an autoencoder, the output itself)."""
        return output


class VAE(BuiltinModel):
    """A variational autoencoder for rows or images, trained with :class:`VAELoss`.

    The ``encoder`` maps the flattened input to the ``latent`` layer's mean and log-variance of
    a ``latent_dim``-dimensional normal code; the ``decoder`` maps a code back to the input.
    Training draws the code from that normal (the reparameterisation trick); evaluation and
    prediction use its mean, so they are deterministic.

    Input: float ``(n, *input_shape)``. Output: ``(n, input_size + 2 * latent_dim)``, the
    decoder output (logits for ``"bernoulli"``), then the code's mean and log-variance; take
    the reconstruction with :meth:`reconstruction`. Train with targets equal to the inputs,
    ``fit((X, X))``. The default loss is ``VAELoss(likelihood)``, an object, so
    ``wb.Estimator.load`` needs it again: ``wb.Estimator.load(path, loss=VAELoss(likelihood))``.

    Args:
        input_shape: the shape of one sample: an int for rows, e.g. ``(1, 8, 8)`` for images.
        latent_dim: width of the code.
        hidden_layers: widths of the encoder's hidden layers (the decoder mirrors them).
        likelihood: one of :data:`LIKELIHOODS`: "bernoulli" needs inputs in [0, 1].

    Attributes:
        input_shape: the shape of one sample, as a tuple.

    Example::

        import workbench as wb
        from workbench.datasets.tabular import digits
        from workbench.models.autoencoder import VAE

        wb.init()
        images, _ = digits(as_images=True)
        model = VAE(input_shape=(1, 8, 8), latent_dim=4, likelihood="bernoulli")
        estimator = model.estimator(lr=3e-3)
        estimator.fit((images, images), epochs=5, batch_size=64)
        new_digits = estimator.model_.generate(16, seed=0)  # (16, 1, 8, 8) in [0, 1]
        print(new_digits.shape, new_digits.min(), new_digits.max())
    """

    default_metrics = ()

    def __init__(self, input_shape: int | Sequence[int], latent_dim: int = 8,
                 hidden_layers: Sequence[int] = (128, 64), likelihood: str = "gaussian"):
        shape = _sizes("input_shape", input_shape if isinstance(input_shape, (list, tuple)) else [input_shape])
        latent_dim, hidden_layers = _size("latent_dim", latent_dim), _sizes("hidden_layers", hidden_layers)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; known: {', '.join(LIKELIHOODS)}")
        super().__init__(input_shape=shape, latent_dim=latent_dim, hidden_layers=hidden_layers,
                         likelihood=likelihood)
        self.input_shape = tuple(shape)
        input_size = math.prod(shape)
        self.encoder = nn.Sequential(*_dense_stack([input_size, *hidden_layers]), nn.ReLU())
        self.latent = nn.Linear(hidden_layers[-1], 2 * latent_dim)
        self.decoder = _dense_stack([latent_dim, *reversed(hidden_layers), input_size])

    @property
    def default_loss(self) -> "VAELoss":
        """``VAELoss`` for this VAE's likelihood."""
        return VAELoss(self.config["likelihood"])

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """``[decoder output | mean | log-variance]`` of shape ``(n, input_size + 2 * latent_dim)``."""
        mean, log_var = self.latent(self.encoder(samples.flatten(1))).chunk(2, dim=1)
        code = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var) if self.training else mean
        return torch.cat([self.decoder(code), mean, log_var], dim=1)

    def reconstruction(self, output: np.ndarray) -> np.ndarray:
        """The reconstructed samples ``(n, *input_shape)`` in a forward output (e.g. ``est.predict(X)``)."""
        decoded = np.asarray(output)[:, : math.prod(self.input_shape)]
        return self._to_samples(torch.from_numpy(np.ascontiguousarray(decoded)))

    def generate(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` new samples ``(n, *input_shape)``: the decoded standard normal codes drawn with ``seed``."""
        check_positive_int("n", n)
        codes = torch.randn(n, self.config["latent_dim"], generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return self._to_samples(self.decoder(codes))

    def _to_samples(self, decoded: torch.Tensor) -> np.ndarray:
        """Decoder outputs as samples: probabilities for "bernoulli", in the input's shape."""
        if self.config["likelihood"] == "bernoulli":
            decoded = torch.sigmoid(decoded)
        return decoded.reshape(len(decoded), *self.input_shape).numpy()


class VAELoss:
    """The VAE's loss: the reconstruction's negative log-likelihood plus the code's KL divergence.

    Both are summed over a sample's values and averaged over the batch. The reconstruction term
    is half the squared error ("gaussian", unit variance) or the binary cross-entropy of the
    decoder's logits ("bernoulli"); the KL term is that of ``N(mean, exp(log_var))`` from
    ``N(0, 1)``. It reads the VAE's output ``[decoder output | mean | log_var]``, and the
    targets are the inputs. A saved VAE Estimator is loaded with it given again (it is an
    object, which ``wb.Estimator.load`` does not unpickle without ``trust_code``).

    Example::

        import workbench as wb
        import tempfile
        import numpy as np
        from workbench.models.autoencoder import VAE, VAELoss

        wb.init()
        rows = np.random.default_rng(0).normal(size=(512, 6)).astype(np.float32)
        estimator = VAE(input_shape=6, latent_dim=2, hidden_layers=(16,)).estimator()
        estimator.fit((rows, rows), epochs=2, batch_size=64)
        path = tempfile.mkdtemp() + "/vae"
        estimator.save(path)
        loaded = wb.Estimator.load(path, loss=VAELoss("gaussian"))
        print(loaded.evaluate((rows, rows)))
    """

    def __init__(self, likelihood: str = "gaussian"):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; known: {', '.join(LIKELIHOODS)}")
        self.likelihood = likelihood

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.reshape(len(target), -1)
        size = target.shape[1]
        code_width = output.shape[1] - size
        if code_width <= 0 or code_width % 2:
            raise ValueError(f"VAELoss expects a VAE output [reconstruction | mean | log_var] and the inputs as "
                             f"targets; got outputs of width {output.shape[1]} for targets of width {size}")
        decoded = output[:, :size]
        mean, log_var = output[:, size:].chunk(2, dim=1)
        if self.likelihood == "bernoulli":
            reconstruction = nn.functional.binary_cross_entropy_with_logits(decoded, target, reduction="none")
        else:
            reconstruction = 0.5 * (decoded - target) ** 2
        divergence = -0.5 * (1 + log_var - mean**2 - log_var.exp())
        return (reconstruction.sum(dim=1) + divergence.sum(dim=1)).mean()

    def __repr__(self) -> str:
        return f"VAELoss({self.likelihood!r})"


def reconstruction_error(model: Any, X: Any, batch_size: int = 1024) -> np.ndarray:
    """Per-row anomaly score: the mean squared difference between each sample and its reconstruction.

    Args:
        model: a trained ``wb.Estimator`` of an :class:`Autoencoder` or :class:`VAE` (it
            predicts on the cluster), or the model itself (it predicts here).
        X: the samples, as the model takes them (numpy, or a dask array for an Estimator).
        batch_size: rows per forward pass.

    Returns:
        float32 array of shape ``(n,)``: higher is more unusual.
    """
    from workbench.train.estimator import Estimator

    module = model.model_ if isinstance(model, Estimator) else model
    if not isinstance(module, (Autoencoder, VAE)):
        raise TypeError(f"reconstruction_error needs an Autoencoder or a VAE (or an Estimator of one), "
                        f"not {type(module).__name__}")
    check_positive_int("batch_size", batch_size)
    samples = np.asarray(X, dtype=np.float32)
    if isinstance(model, Estimator):
        output = model.predict(X, batch_size=batch_size).compute()
    else:
        output = _predict_here(module, samples, batch_size)
    reconstructed = module.reconstruction(output)
    return ((reconstructed - samples) ** 2).reshape(len(samples), -1).mean(axis=1)


def _predict_here(module: nn.Module, samples: np.ndarray, batch_size: int) -> np.ndarray:
    """``module``'s outputs for ``samples`` in eval mode, batch by batch (its mode restored after)."""
    training = module.training
    module.eval()
    with torch.no_grad():
        outputs = [module(torch.from_numpy(samples[i : i + batch_size])).numpy()
                   for i in range(0, len(samples), batch_size)]
    module.train(training)
    return np.concatenate(outputs)


def _size(name: str, value: Any) -> int:
    """``value`` as an int, after checking that it is a positive integer."""
    check_positive_int(name, value)
    return int(value)


def _sizes(name: str, values: Any) -> list[int]:
    """``values``, a non-empty list or tuple of positive integers, as a list of ints."""
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{name} must be a non-empty list or tuple of positive integers, got {values!r}")
    return [_size(name, value) for value in values]


def _dense_stack(sizes: list[int]) -> nn.Sequential:
    """Linear layers through ``sizes``, with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for index, (inputs, outputs) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(inputs, outputs)] + ([nn.ReLU()] if index < len(sizes) - 2 else [])
    return nn.Sequential(*layers)
