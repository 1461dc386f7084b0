"""Forecasters for windows of time series: LSTM, Seq2Seq and TCN, after Analytics Zoo Chronos.

A forecaster maps a window of the past to the next steps of the targets:

- ``X``: ``(windows, past_seq_len, input_feature_num)``, the targets first on the last axis,
  then any extra features;
- ``y``: ``(windows, future_seq_len, output_target_num)``,

which is what ``TSDataset.roll(lookback=past_seq_len, horizon=future_seq_len)`` cuts. Like
Chronos' forecasters, :class:`LSTMForecaster`, :class:`Seq2SeqForecaster` and
:class:`TCNForecaster` are objects built from that window shape, then ``fit`` on ``(X, y)``,
``predict``, ``evaluate``, ``save`` and ``load``. Each trains one of this module's torch
networks with a ``wb.Estimator``, so ``fit`` is data-parallel over the workers of the current
context. The networks are built-in models (:class:`~workbench.models.base.BuiltinModel`) and
can be used on their own: ``Seq2Seq(...).estimator().fit((X, y))``, and
``wb.Estimator.load`` rebuilds them from a saved estimator without ``trust_code``.
"""

from __future__ import annotations

import inspect
import json
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.arguments import check_positive_int
from workbench.models.base import BuiltinModel

__all__ = [
    "LSTMForecastNet", "Seq2Seq", "TCNForecastNet",
    "LSTMForecaster", "Seq2SeqForecaster", "TCNForecaster",
    "RNN_TYPES", "BRIDGES",
]

#: The recurrent cells :class:`Seq2Seq` can use.
RNN_TYPES = ("lstm", "gru")
#: How :class:`Seq2Seq` hands the encoder's final states to the decoder: through a dense
#: layer, or unchanged.
BRIDGES = ("dense", "pass")
#: The file, next to the estimator's, that names a saved forecaster's class and parameters.
FORECASTER_FILE = "forecaster.json"


# -- networks ------------------------------------------------------------------------------------


class _WindowNet(BuiltinModel):
    """Checks the windows a forecasting network is given (3-D, ``input_feature_num`` wide)."""

    default_loss = "mse"
    default_metrics = ("mae",)

    def _check_input(self, x: torch.Tensor) -> None:
        width = self.config["input_feature_num"]
        if x.ndim != 3 or x.shape[-1] != width:
            raise ValueError(f"{type(self).__name__} takes windows of shape (batch, time, {width}), "
                             f"got {tuple(x.shape)}")


class LSTMForecastNet(_WindowNet):
    """A stacked LSTM whose last output is mapped by a dense layer to all future steps at once.

    Input ``(batch, time, input_feature_num)``, output ``(batch, future_seq_len,
    output_target_num)``: Chronos' ``VanillaLSTM``.

    Args:
        input_feature_num: features per time step.
        output_target_num: targets forecast per future step.
        future_seq_len: future steps forecast.
        hidden_dim: units of each LSTM layer.
        layer_num: stacked LSTM layers.
        dropout: dropout between the LSTM layers and before the dense layer.

    Example::

        import numpy as np
        import workbench as wb
        from workbench.models.forecasting import LSTMForecastNet

        wb.init()
        time = np.arange(600, dtype=np.float32)
        series = np.sin(2 * np.pi * time / 24)
        x = np.stack([series[i:i + 24] for i in range(570)])[:, :, None]
        y = np.stack([series[i + 24:i + 26] for i in range(570)])[:, :, None]
        estimator = LSTMForecastNet(input_feature_num=1, output_target_num=1, future_seq_len=2).estimator(lr=0.01)
        estimator.fit((x, y), epochs=3, batch_size=64, verbose=False)
        print(estimator.evaluate((x, y)))
    """

    def __init__(self, input_feature_num: int, output_target_num: int, future_seq_len: int = 1,
                 hidden_dim: int = 32, layer_num: int = 1, dropout: float = 0.1):
        sizes = _positive_ints(input_feature_num=input_feature_num, output_target_num=output_target_num,
                               future_seq_len=future_seq_len, hidden_dim=hidden_dim, layer_num=layer_num)
        dropout = _dropout(dropout)
        super().__init__(**sizes, dropout=dropout)
        self.lstm = nn.LSTM(sizes["input_feature_num"], sizes["hidden_dim"], sizes["layer_num"], batch_first=True,
                            dropout=dropout if sizes["layer_num"] > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(sizes["hidden_dim"], sizes["future_seq_len"] * sizes["output_target_num"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        outputs, _ = self.lstm(x)
        forecast = self.head(self.dropout(outputs[:, -1]))
        return forecast.view(len(x), self.config["future_seq_len"], self.config["output_target_num"])


class Seq2Seq(_WindowNet):
    """An RNN encoder-decoder: Analytics Zoo's ``Seq2seq``, with a bridge between the two.

    The encoder reads the window; its final states, passed through the bridge, start the
    decoder, which then forecasts one step at a time, each step's input being the previous
    step's forecast (the first step's: the last observed targets, the first
    ``output_feature_num`` features of the window's last row, where ``TSDataset.roll`` puts
    them).

    Args:
        input_feature_num: features per time step (the targets first).
        output_feature_num: targets forecast per future step.
        future_seq_len: future steps forecast.
        rnn_type: "lstm" or "gru", for both encoder and decoder.
        num_layers: stacked layers of each.
        hidden_size: units of each layer.
        bridge: "dense": each final state (per layer; for an LSTM both ``h`` and ``c``) goes
            through a dense layer; "pass": the states are handed over unchanged.

    Example::

        import numpy as np
        import workbench as wb
        from workbench.models.forecasting import Seq2Seq

        wb.init()
        time = np.arange(600, dtype=np.float32)
        series = np.sin(2 * np.pi * time / 24)
        x = np.stack([series[i:i + 24] for i in range(570)])[:, :, None]
        y = np.stack([series[i + 24:i + 27] for i in range(570)])[:, :, None]
        model = Seq2Seq(input_feature_num=1, output_feature_num=1, future_seq_len=3, rnn_type="gru")
        estimator = model.estimator(lr=0.01)
        estimator.fit((x, y), epochs=3, batch_size=64, verbose=False)
        print(estimator.predict(x[:2]).compute().shape)  # (2, 3, 1)
    """

    def __init__(self, input_feature_num: int, output_feature_num: int, future_seq_len: int, rnn_type: str = "lstm",
                 num_layers: int = 1, hidden_size: int = 32, bridge: str = "dense"):
        sizes = _positive_ints(input_feature_num=input_feature_num, output_feature_num=output_feature_num,
                               future_seq_len=future_seq_len, num_layers=num_layers, hidden_size=hidden_size)
        if sizes["output_feature_num"] > sizes["input_feature_num"]:
            raise ValueError(f"Seq2Seq: output_feature_num ({output_feature_num}) cannot exceed input_feature_num "
                             f"({input_feature_num}): the targets are the first input features")
        if rnn_type not in RNN_TYPES:
            raise ValueError(f"Seq2Seq: rnn_type must be one of {list(RNN_TYPES)}, got {rnn_type!r}")
        if bridge not in BRIDGES:
            raise ValueError(f"Seq2Seq: bridge must be one of {list(BRIDGES)}, got {bridge!r}")
        super().__init__(**sizes, rnn_type=rnn_type, bridge=bridge)
        cell = nn.LSTM if rnn_type == "lstm" else nn.GRU
        hidden, layers = sizes["hidden_size"], sizes["num_layers"]
        self.encoder = cell(sizes["input_feature_num"], hidden, layers, batch_first=True)
        self.decoder = cell(sizes["output_feature_num"], hidden, layers, batch_first=True)
        states = 2 if rnn_type == "lstm" else 1
        self.bridge = nn.ModuleList(
            nn.Linear(hidden, hidden) if bridge == "dense" else nn.Identity() for _ in range(states))
        self.head = nn.Linear(hidden, sizes["output_feature_num"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        _, encoded = self.encoder(x)
        encoded = encoded if isinstance(encoded, tuple) else (encoded,)
        bridged = tuple(layer(state) for layer, state in zip(self.bridge, encoded, strict=True))
        state = bridged if len(bridged) == 2 else bridged[0]
        step = x[:, -1:, :self.config["output_feature_num"]]
        forecasts = []
        for _ in range(self.config["future_seq_len"]):
            output, state = self.decoder(step, state)
            step = self.head(output)
            forecasts.append(step)
        return torch.cat(forecasts, dim=1)


class _CausalBlock(nn.Module):
    """Two dilated causal convolutions with a residual connection: a TCN's temporal block."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.padding = (kernel_size - 1) * dilation  # on the left only: no output sees the future
        self.first = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.second = nn.Conv1d(out_channels, out_channels, kernel_size, dilation=dilation)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(F.relu(self.first(F.pad(x, (self.padding, 0)))))
        hidden = self.dropout(F.relu(self.second(F.pad(hidden, (self.padding, 0)))))
        return F.relu(hidden + self.skip(x))


class TCNForecastNet(_WindowNet):
    """A temporal convolutional network: Chronos' ``TCN`` forecaster.

    Causal convolution blocks, block ``i`` dilated by ``2 ** i``, see ``1 + 2 * (kernel_size -
    1) * (2 ** blocks - 1)`` steps back (61 with the defaults); a dense layer maps the last
    step's channels to all future steps at once.

    Args:
        input_feature_num: features per time step.
        output_target_num: targets forecast per future step.
        future_seq_len: future steps forecast.
        num_channels: channels of each block (a list: one block per entry).
        kernel_size: width of each convolution.
        dropout: dropout after each convolution.

    Example::

        import numpy as np
        import workbench as wb
        from workbench.models.forecasting import TCNForecastNet

        wb.init()
        time = np.arange(600, dtype=np.float32)
        series = np.sin(2 * np.pi * time / 24)
        x = np.stack([series[i:i + 24] for i in range(570)])[:, :, None]
        y = np.stack([series[i + 24:i + 26] for i in range(570)])[:, :, None]
        estimator = TCNForecastNet(input_feature_num=1, output_target_num=1, future_seq_len=2).estimator(lr=0.01)
        estimator.fit((x, y), epochs=3, batch_size=64, verbose=False)
        print(estimator.evaluate((x, y)))
    """

    def __init__(self, input_feature_num: int, output_target_num: int, future_seq_len: int = 1,
                 num_channels: list[int] | tuple[int, ...] = (16, 16, 16, 16), kernel_size: int = 3,
                 dropout: float = 0.1):
        channels = list(num_channels) if isinstance(num_channels, (list, tuple)) else []
        if not channels:
            raise ValueError(f"TCNForecastNet: num_channels must be a non-empty list of channel counts, "
                             f"got {num_channels!r}")
        channels = list(_positive_ints(**{f"num_channels[{index}]": count
                                          for index, count in enumerate(channels)}).values())
        sizes = _positive_ints(input_feature_num=input_feature_num, output_target_num=output_target_num,
                               future_seq_len=future_seq_len, kernel_size=kernel_size)
        dropout = _dropout(dropout)
        super().__init__(**sizes, num_channels=channels, dropout=dropout)
        widths = [sizes["input_feature_num"]] + channels
        self.blocks = nn.Sequential(*(
            _CausalBlock(widths[index], widths[index + 1], sizes["kernel_size"], 2 ** index, dropout)
            for index in range(len(channels))))
        self.head = nn.Linear(channels[-1], sizes["future_seq_len"] * sizes["output_target_num"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        features = self.blocks(x.transpose(1, 2))  # convolutions run over (batch, channels, time)
        forecast = self.head(features[:, :, -1])
        return forecast.view(len(x), self.config["future_seq_len"], self.config["output_target_num"])


# -- forecasters ---------------------------------------------------------------------------------


class _Forecaster:
    """What the forecasters share: window checks, training, prediction, evaluation, persistence.

    A subclass stores its own parameters in ``__init__`` and builds its network in
    :meth:`_network`. Learned attributes: ``estimator_`` (the ``wb.Estimator`` training the
    network; the network is ``estimator_.model_``) and ``history_`` (per-epoch metrics of the
    last ``fit``).
    """

    def __init__(self, past_seq_len: int, input_feature_num: int, output_target_num: int, future_seq_len: int,
                 lr: float, seed: int):
        _positive_ints(past_seq_len=past_seq_len, input_feature_num=input_feature_num,
                       output_target_num=output_target_num, future_seq_len=future_seq_len)
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.past_seq_len = past_seq_len
        self.input_feature_num = input_feature_num
        self.output_target_num = output_target_num
        self.future_seq_len = future_seq_len
        self.lr = lr
        self.seed = seed

    def _network(self) -> _WindowNet:
        """A new, untrained network for this forecaster's windows."""
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments, by name (as scikit-learn's ``get_params``)."""
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({arguments})"

    def fit(self, data: tuple[Any, Any], epochs: int = 1, batch_size: int = 32,
            validation_data: tuple[Any, Any] | None = None, verbose: bool = False) -> _Forecaster:
        """Train on ``(X, y)`` windows over the workers of the current context.

        The first call builds the network (initial weights from ``seed``); later calls go on
        training it, as Chronos' forecasters do.

        Args:
            data: ``(X, y)`` numpy or dask arrays, as ``TSDataset.roll`` returns them.
            epochs: passes over the data.
            batch_size: the global batch, split across the workers.
            validation_data: ``(X, y)`` evaluated after each epoch (``val_`` columns in ``history_``).
            verbose: show a progress bar.

        Returns:
            self.

        Raises:
            ValueError: windows of another shape than this forecaster's.
        """
        x, y = self._check_pair(data, "data")
        validation = None if validation_data is None else self._check_pair(validation_data, "validation_data")
        if not hasattr(self, "estimator_"):
            with torch.random.fork_rng():
                torch.manual_seed(self.seed)
                network = self._network()
            self.estimator_ = network.estimator(optimizer="adam", lr=self.lr, seed=self.seed)
        self.history_ = self.estimator_.fit((x, y), epochs=epochs, batch_size=batch_size,
                                            validation_data=validation, seed=self.seed, verbose=verbose)
        return self

    def predict(self, x: Any) -> np.ndarray:
        """Forecasts ``(windows, future_seq_len, output_target_num)`` for windows ``x`` (computed on the workers).

        Raises:
            ValueError: the forecaster is not fitted, or ``x`` has another shape than its windows.
        """
        self._check_fitted("predict")
        return np.asarray(self.estimator_.predict(self._check_x(x, "X")).compute())

    def evaluate(self, data: tuple[Any, Any], metrics: tuple | list = ("mse", "mae")) -> dict[str, float]:
        """Metrics of the forecasts of ``(X, y)``, over every window, step and target.

        Args:
            data: ``(X, y)`` arrays, as for :meth:`fit`.
            metrics: names ("mse", "mae", "rmse", "r2") or functions ``f(y_pred, y_true)``.

        Returns:
            ``{metric name: value}``, in the units of ``y``.
        """
        from workbench.train.metrics import get_metrics

        x, y = self._check_pair(data, "data")
        resolved = get_metrics(list(metrics))
        if not resolved:
            raise ValueError("evaluate: metrics names no metric")
        forecast, actual = self.predict(x), np.asarray(y)
        return {metric.name: metric.result(metric.update(forecast, actual)) for metric in resolved}

    def save(self, path: str | os.PathLike) -> None:
        """Write the forecaster (parameters, weights, optimizer state, history) to a directory.

        The directory is a saved ``wb.Estimator`` plus ``forecaster.json``; :meth:`load` reads it.
        """
        self._check_fitted("save")
        self.estimator_.save(path)
        spec = {"class": type(self).__name__, "params": self.get_params()}
        (Path(path) / FORECASTER_FILE).write_text(json.dumps(spec, indent=2, default=_json_number))

    @classmethod
    def load(cls, path: str | os.PathLike) -> _Forecaster:
        """The forecaster :meth:`save` wrote to ``path``, ready to predict or to train further.

        Raises:
            FileNotFoundError: ``path`` holds no saved forecaster.
            ValueError: it holds another kind of forecaster.
        """
        from workbench.train.estimator import Estimator

        file = Path(path) / FORECASTER_FILE
        if not file.is_file():
            raise FileNotFoundError(f"{path} holds no saved forecaster: {FORECASTER_FILE} is missing")
        spec = json.loads(file.read_text())
        if spec.get("class") != cls.__name__:
            raise ValueError(f"{path} holds a {spec.get('class')}, not a {cls.__name__}: load it with "
                             f"{spec.get('class')}.load")
        forecaster = cls(**spec["params"])
        forecaster.estimator_ = Estimator.load(path)
        forecaster.history_ = forecaster.estimator_.history_
        return forecaster

    # -- checks ----------------------------------------------------------------------------------

    def _check_fitted(self, action: str) -> None:
        if not hasattr(self, "estimator_"):
            raise ValueError(f"{action}: this {type(self).__name__} is not fitted; call fit() first")

    def _check_pair(self, data: Any, name: str) -> tuple[Any, Any]:
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise TypeError(f"{name} must be an (X, y) pair of arrays, as TSDataset.roll returns, "
                            f"got {type(data).__name__}")
        x = self._check_x(data[0], f"{name}'s X")
        y = _as_array(data[1])
        expected = (self.future_seq_len, self.output_target_num)
        if y.ndim != 3 or tuple(y.shape[1:]) != expected:
            raise ValueError(f"{name}'s y must have shape (windows, future_seq_len={expected[0]}, "
                             f"output_target_num={expected[1]}), got {tuple(y.shape)}")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{name}: X has {x.shape[0]} windows but y has {y.shape[0]}")
        return x, y

    def _check_x(self, x: Any, name: str) -> Any:
        x = _as_array(x)
        expected = (self.past_seq_len, self.input_feature_num)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"{name} must have shape (windows, past_seq_len={expected[0]}, "
                             f"input_feature_num={expected[1]}), as TSDataset.roll(lookback={expected[0]}) "
                             f"cuts it, got {tuple(x.shape)}")
        return x


class LSTMForecaster(_Forecaster):
    """Forecasts the next steps of a series with an :class:`LSTMForecastNet` (Chronos' ``LSTMForecaster``).

    Args:
        past_seq_len: time steps per input window (``roll``'s ``lookback``).
        input_feature_num: features per time step (targets and extra features).
        output_target_num: targets forecast.
        future_seq_len: future steps forecast (``roll``'s ``horizon``).
        hidden_dim, layer_num, dropout: the network's (see :class:`LSTMForecastNet`).
        lr: Adam's learning rate.
        seed: seed of the initial weights and of the shuffling.

    Example::

        import numpy as np
        from sklearn.preprocessing import StandardScaler
        import workbench as wb
        from workbench.datasets.timeseries import nyc_taxi_like
        from workbench.feature import TSDataset
        from workbench.models.forecasting import LSTMForecaster

        wb.init()
        train, _, test = TSDataset.from_pandas(nyc_taxi_like(days=14, anomalies=0), "timestamp", "value",
                                               with_split=True, test_ratio=0.2)
        scaler = StandardScaler()
        x, y = train.scale(scaler).roll(lookback=48, horizon=2)
        x_test, y_test = test.scale(scaler, fit=False).roll(lookback=48, horizon=2)
        forecaster = LSTMForecaster(past_seq_len=48, input_feature_num=1, output_target_num=1, future_seq_len=2,
                                    lr=0.01)
        forecaster.fit((x, y), epochs=5, batch_size=32)
        print(forecaster.evaluate((x_test, y_test)))
    """

    def __init__(self, past_seq_len: int, input_feature_num: int, output_target_num: int, future_seq_len: int = 1,
                 hidden_dim: int = 32, layer_num: int = 1, dropout: float = 0.1, lr: float = 1e-3, seed: int = 0):
        super().__init__(past_seq_len, input_feature_num, output_target_num, future_seq_len, lr, seed)
        self.hidden_dim = hidden_dim
        self.layer_num = layer_num
        self.dropout = dropout

    def _network(self) -> LSTMForecastNet:
        return LSTMForecastNet(self.input_feature_num, self.output_target_num, self.future_seq_len,
                               self.hidden_dim, self.layer_num, self.dropout)


class Seq2SeqForecaster(_Forecaster):
    """Forecasts the next steps of a series with a :class:`Seq2Seq` encoder-decoder (Chronos' ``Seq2SeqForecaster``).

    Args:
        past_seq_len: time steps per input window (``roll``'s ``lookback``).
        input_feature_num: features per time step (the targets first, as ``roll`` puts them).
        output_target_num: targets forecast.
        future_seq_len: future steps forecast (``roll``'s ``horizon``).
        hidden_dim, layer_num, rnn_type, bridge: the network's ``hidden_size``, ``num_layers``,
            ``rnn_type`` and ``bridge`` (see :class:`Seq2Seq`).
        lr: Adam's learning rate.
        seed: seed of the initial weights and of the shuffling.

    Example::

        import numpy as np
        import workbench as wb
        from workbench.models.forecasting import Seq2SeqForecaster

        wb.init()
        time = np.arange(700, dtype=np.float32)
        series = np.sin(2 * np.pi * time / 24) + 0.1 * np.random.default_rng(0).normal(size=700)
        x = np.stack([series[i:i + 24] for i in range(672)])[:, :, None].astype(np.float32)
        y = np.stack([series[i + 24:i + 28] for i in range(672)])[:, :, None].astype(np.float32)
        forecaster = Seq2SeqForecaster(past_seq_len=24, input_feature_num=1, output_target_num=1, future_seq_len=4,
                                       lr=0.01)
        forecaster.fit((x[:600], y[:600]), epochs=5, batch_size=32)
        print(forecaster.predict(x[600:]).shape)  # (72, 4, 1)
        print(forecaster.evaluate((x[600:], y[600:]), metrics=["rmse"]))
    """

    def __init__(self, past_seq_len: int, input_feature_num: int, output_target_num: int, future_seq_len: int = 1,
                 hidden_dim: int = 32, layer_num: int = 1, rnn_type: str = "lstm", bridge: str = "dense",
                 lr: float = 1e-3, seed: int = 0):
        super().__init__(past_seq_len, input_feature_num, output_target_num, future_seq_len, lr, seed)
        self.hidden_dim = hidden_dim
        self.layer_num = layer_num
        self.rnn_type = rnn_type
        self.bridge = bridge

    def _network(self) -> Seq2Seq:
        return Seq2Seq(self.input_feature_num, self.output_target_num, self.future_seq_len, self.rnn_type,
                       self.layer_num, self.hidden_dim, self.bridge)


class TCNForecaster(_Forecaster):
    """Forecasts the next steps of a series with a :class:`TCNForecastNet` (Chronos' ``TCNForecaster``).

    Args:
        past_seq_len: time steps per input window (``roll``'s ``lookback``).
        input_feature_num: features per time step (targets and extra features).
        output_target_num: targets forecast.
        future_seq_len: future steps forecast (``roll``'s ``horizon``).
        num_channels, kernel_size, dropout: the network's (see :class:`TCNForecastNet`).
        lr: Adam's learning rate.
        seed: seed of the initial weights and of the shuffling.

    Example::

        import numpy as np
        from sklearn.preprocessing import StandardScaler
        import workbench as wb
        from workbench.datasets.timeseries import nyc_taxi_like
        from workbench.feature import TSDataset
        from workbench.models.forecasting import TCNForecaster

        wb.init()
        train, _, test = TSDataset.from_pandas(nyc_taxi_like(days=14, anomalies=0), "timestamp", "value",
                                               with_split=True, test_ratio=0.2)
        train, test = (part.gen_dt_feature(["HOUR", "WEEKDAY"]) for part in (train, test))
        scaler = StandardScaler()
        x, y = train.scale(scaler).roll(lookback=48, horizon=1)
        x_test, y_test = test.scale(scaler, fit=False).roll(lookback=48, horizon=1)
        forecaster = TCNForecaster(past_seq_len=48, input_feature_num=3, output_target_num=1, lr=0.01)
        forecaster.fit((x, y), epochs=5, batch_size=32)
        print(forecaster.evaluate((x_test, y_test)))
    """

    def __init__(self, past_seq_len: int, input_feature_num: int, output_target_num: int, future_seq_len: int = 1,
                 num_channels: list[int] | tuple[int, ...] = (16, 16, 16, 16), kernel_size: int = 3,
                 dropout: float = 0.1, lr: float = 1e-3, seed: int = 0):
        super().__init__(past_seq_len, input_feature_num, output_target_num, future_seq_len, lr, seed)
        self.num_channels = list(num_channels) if isinstance(num_channels, tuple) else num_channels
        self.kernel_size = kernel_size
        self.dropout = dropout

    def _network(self) -> TCNForecastNet:
        return TCNForecastNet(self.input_feature_num, self.output_target_num, self.future_seq_len,
                              self.num_channels, self.kernel_size, self.dropout)


# -- argument checks ------------------------------------------------------------------------------


def _positive_ints(**sizes: Any) -> dict[str, int]:
    """The sizes as Python ints (for a JSON config); ``ValueError`` naming one that is not a positive integer."""
    for name, value in sizes.items():
        check_positive_int(name, value)
    return {name: int(value) for name, value in sizes.items()}


def _dropout(dropout: Any) -> float:
    """The dropout rate as a float; ``ValueError`` unless it is a number in [0, 1)."""
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    return float(dropout)


def _json_number(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (``json.dumps``' ``default``)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot save a {type(value).__name__} parameter as JSON")


def _as_array(values: Any) -> Any:
    """``values`` as is when it is an array (numpy or dask, which stays lazy), else as a numpy array."""
    return values if hasattr(values, "shape") and hasattr(values, "ndim") else np.asarray(values)
