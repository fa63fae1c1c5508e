"""An independent Qwen3-VL-Embedding reference, written from the published recipe."""
