"""The input and output signature of a served model: names, shapes and dtypes.

A signature is recorded when a model is saved (``Estimator.fit`` notes the shape and dtype of
the training features; ONNX and Keras files carry theirs) and every request is checked against
it before it reaches the model, so a wrong request gets an error naming the input and what
differs instead of a framework traceback. The first dimension of every tensor is the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TensorSpec", "Signature", "SignatureError"]


class SignatureError(ValueError):
    """A request does not match the model's input signature (the message names the input)."""


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor: ``shape`` includes the batch dimension; ``None`` is any size."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @classmethod
    def from_array(cls, name: str, array: np.ndarray) -> TensorSpec:
        """The spec of a batch like ``array`` (any number of rows)."""
        return cls(name, (None, *(int(n) for n in array.shape[1:])), np.dtype(array.dtype).name)

    def check(self, value: Any) -> np.ndarray:
        """``value`` as an array of this spec; a shape, dtype or value that does not fit raises SignatureError."""
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as error:  # e.g. ragged nested lists
            raise SignatureError(f"input {self.name!r}: not a rectangular array ({error})") from error
        expected = np.dtype(self.dtype)
        if array.dtype.kind in "OUSV" or not _castable(array.dtype, expected):
            raise SignatureError(f"input {self.name!r}: expected dtype {self.dtype}, got {array.dtype}")
        if len(array.shape) != len(self.shape) or any(
            want is not None and got != want for got, want in zip(array.shape, self.shape)
        ):
            raise SignatureError(
                f"input {self.name!r}: expected shape {_shape_text(self.shape)}, got {_shape_text(array.shape)}"
            )
        if expected.kind in "iu" and array.size and array.dtype != expected:
            limits = np.iinfo(expected)
            if array.min() < limits.min or array.max() > limits.max:
                raise SignatureError(f"input {self.name!r}: values outside the range of {self.dtype}")
        array = array.astype(expected, copy=False)
        if expected.kind == "f" and not np.isfinite(array).all():
            raise SignatureError(f"input {self.name!r}: contains NaN or infinite values (as {self.dtype})")
        return array

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> TensorSpec:
        return cls(str(spec["name"]), tuple(None if n is None else int(n) for n in spec["shape"]),
                   np.dtype(spec["dtype"]).name)


@dataclass(frozen=True)
class Signature:
    """A model's inputs and outputs, plus the table columns its single input was built from.

    ``columns`` (when the model was trained on table columns) lets a request give rows as
    records (``{"x1": 0.5, "x2": 1.0}``) instead of arrays.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    columns: tuple[str, ...] | None = None

    @classmethod
    def from_example(cls, inputs: np.ndarray | Mapping[str, np.ndarray], outputs: np.ndarray | None = None,
                     columns: Sequence[str] | None = None) -> Signature:
        """The signature of a model that takes batches like ``inputs`` (an array, or arrays by name)."""
        named = {"features": inputs} if not isinstance(inputs, Mapping) else dict(inputs)
        specs = tuple(TensorSpec.from_array(name, np.asarray(array)) for name, array in named.items())
        output_specs = () if outputs is None else (TensorSpec.from_array("prediction", np.asarray(outputs)),)
        return cls(specs, output_specs, None if columns is None else tuple(columns))

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    def check(self, batch: Any) -> list[np.ndarray]:
        """The model's input arrays, in order, from ``batch``: an array (for one input), a list
        of arrays in input order, or a mapping from input name to array. All must have the same
        number of rows. Raises SignatureError naming the first input that does not fit."""
        if isinstance(batch, Mapping):
            missing = [name for name in self.input_names if name not in batch]
            unknown = [name for name in batch if name not in self.input_names]
            if missing or unknown:
                raise SignatureError(
                    f"inputs {sorted(batch)} do not match the model's inputs {self.input_names}"
                    + (f": missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else "")
                )
            values = [batch[name] for name in self.input_names]
        elif len(self.inputs) == 1:
            values = [batch]
        elif isinstance(batch, (list, tuple)) and len(batch) == len(self.inputs):
            values = list(batch)
        else:
            raise SignatureError(f"the model has {len(self.inputs)} inputs {self.input_names}: give them by name")
        arrays = [spec.check(value) for spec, value in zip(self.inputs, values)]
        rows = {len(array) if array.ndim else 0 for array in arrays}
        if len(rows) > 1:
            raise SignatureError(f"inputs {self.input_names} have different numbers of rows: {[len(a) for a in arrays]}")
        return arrays

    def records_to_batch(self, records: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """Rows given as ``{column: value}`` records, as rows of the model's single input (in column order)."""
        if self.columns is None:
            raise SignatureError("this model was not trained on named columns: send arrays, not records")
        if not records:
            raise SignatureError("no records: send at least one row")
        rows = []
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise SignatureError(f"record {index}: expected an object with fields {list(self.columns)}")
            missing = [column for column in self.columns if column not in record]
            if missing:
                raise SignatureError(f"record {index}: missing field(s) {missing}")
            unknown = [field for field in record if field not in self.columns]
            if unknown:
                raise SignatureError(f"record {index}: unknown field(s) {unknown}; the model takes {list(self.columns)}")
            rows.append([record[column] for column in self.columns])
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [s.to_dict() for s in self.inputs], "outputs": [s.to_dict() for s in self.outputs],
                "columns": None if self.columns is None else list(self.columns)}

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> Signature:
        columns = config.get("columns")
        return cls(tuple(TensorSpec.from_dict(s) for s in config["inputs"]),
                   tuple(TensorSpec.from_dict(s) for s in config.get("outputs", ())),
                   None if columns is None else tuple(columns))


def _castable(got: np.dtype, expected: np.dtype) -> bool:
    """Whether values of ``got`` convert to ``expected`` without changing kind in a lossy way:
    integers and booleans to floats or wider integers, floats to other floats; never floats to integers."""
    if got == expected:
        return True
    if expected.kind == "f":
        return got.kind in "biuf"
    if expected.kind in "iu":
        return got.kind in "biu"
    if expected.kind == "b":
        return got.kind == "b"
    return False


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("batch" if i == 0 and n is None else "any" if n is None else str(n)
                           for i, n in enumerate(shape)) + ")"
