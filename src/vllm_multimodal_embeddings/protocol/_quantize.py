"""int8 vectors with Qwen3-VL-Embedding's learned quantization step.

QwenLM trained the model with Learned Step Size Quantization (technical report, section 5.1:
LSQ, Esser et al. 2020) and published the learned step of each size (QwenLM/Qwen3-VL-Embedding
issue #40): 0.2656 for 2B, 0.2891 for 8B. They name the method and the numbers, not the exact
formula; this module applies LSQ's own definition, one step for the whole vector::

    q = clip(round(x / step), -128, 127)

where ``x`` is the model's pooled vector BEFORE L2 normalization (what vLLM returns with
``use_activation: false``). Why before: a 2048-dim unit vector has elements near
1/sqrt(2048) ~ 0.022, and a step of 0.2656 rounds every element below 0.133 to zero (at most
56 of 2048 could survive): no int8 code at all. The raw vector's elements are O(1), where the
step gives a real int8 range. The step being global, quantizing commutes with taking a
Matryoshka prefix, so ``dimensions`` keeps the first ``d`` codes of the full vector.

Cosine similarity of int8 vectors needs no step (it cancels); the step only decides which
values round alike and which saturate. QwenLM warn that the third training stage merged
models, so the published steps "may not necessarily be optimal"; ``cookbook/int8_recall.py``
measures recall against the float vectors for any step.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from .._exceptions import ConfigurationError
from .._settings import register_bounds

__all__ = ["QWEN3_VL_INT8_STEPS", "check_int8_scale", "int8_scale_for", "quantize_int8"]

#: The learned LSQ step by model size, with the vector size that identifies that size.
QWEN3_VL_INT8_STEPS: Final = {"2B": (0.2656, 2048), "8B": (0.2891, 4096)}

# The served name's last path part, exactly: "Qwen/Qwen3-VL-Embedding-2B", "/models/qwen3-vl-
# embedding-8b". A fine-tune or a variant ("...-2B-ft") may have moved its values: no step.
_QWEN3_VL_NAME = re.compile(r"qwen3-vl-embedding-(2b|8b)", re.IGNORECASE)


def check_int8_scale(name: str, value: Any) -> None:
    """A settings check: ``None`` or a finite number > 0."""
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a finite number > 0, got {value!r}")


register_bounds(check_int8_scale, gt=0, allow_inf_nan=False)


def int8_scale_for(model: str, embedding_size: int, override: float | None) -> float:
    """The quantization step for ``model``: ``override``, else the published one.

    A model is taken for Qwen3-VL-Embedding-2B/8B only when the last part of its served name
    is exactly that (``Qwen/Qwen3-VL-Embedding-2B``, any case) AND its vectors have that
    size's length. Any other checkpoint (a fine-tune, another model, a model served under
    another name) has no known step: a :class:`ConfigurationError` asks for one rather than
    quantize with a guess.
    """
    if override is not None:
        return float(override)
    match = _QWEN3_VL_NAME.fullmatch(model.rstrip("/").rsplit("/", 1)[-1])
    if match is not None:
        step, size = QWEN3_VL_INT8_STEPS[match.group(1).upper()]
        if size == embedding_size:
            return step
    known = ", ".join(
        f"Qwen3-VL-Embedding-{name} {step}" for name, (step, _) in QWEN3_VL_INT8_STEPS.items()
    )
    raise ConfigurationError(
        f"embedding_type='int8' needs the model's quantization step, known only for {known}; "
        f"the served model {model!r} ({embedding_size} dims) is neither: pass int8_scale= "
        "(cookbook/int8_recall.py measures recall for a step you choose)"
    )


def quantize_int8(raw: npt.NDArray[Any], scale: float) -> npt.NDArray[np.int8]:
    """LSQ's int8 code of un-normalized vectors: ``clip(round(raw / scale), -128, 127)``."""
    codes = np.clip(np.rint(np.asarray(raw, dtype=np.float64) / scale), -128, 127)
    return codes.astype(np.int8)
