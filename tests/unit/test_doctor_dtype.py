"""doctor's dtype line: the model's dtype read off a float32 vector's bits."""

import numpy as np
import pytest

from vllm_multimodal_embeddings.doctor import infer_dtype


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(2048).astype(np.float32)
    return v / np.linalg.norm(v)


def _to_bf16(v: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even to bfloat16, widened back to float32 (what vLLM sends)."""
    bits = v.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_dtype_is_recognized(seed):
    v = _unit(np.random.default_rng(seed))
    assert infer_dtype(_to_bf16(v)) == "bfloat16"
    assert infer_dtype(v.astype(np.float16).astype(np.float32)) == "float16"
    assert infer_dtype(v) == "float32"


def test_a_bf16_vector_rescaled_in_float32_reads_as_float32():
    # Normalizing in float32 after pooling in bf16 loses the bf16 pattern: say float32, not bf16.
    v = _to_bf16(_unit(np.random.default_rng(3))) * np.float32(1.0001)
    assert infer_dtype(v) == "float32"


def test_an_empty_vector_is_unknown():
    assert infer_dtype(np.empty(0, np.float32)) == "unknown"
