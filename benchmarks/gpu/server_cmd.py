"""Print the vLLM server's arguments (one a line) from the INSTALLED package's production flags.

Usage: ``python server_cmd.py CHECKPOINT [--no-template] [-- EXTRA_VLLM_ARGS...]``.
The production profile is ``vllm_multimodal_embeddings.server.flags.production_config``; only
the checkpoint path, the served name (the published model's, as users see it), host and port change.
``--no-template`` drops our chat template (the doctor must then fail its parity checks).
"""

from __future__ import annotations

import argparse
import sys

from vllm_multimodal_embeddings import _constants
from vllm_multimodal_embeddings.server.flags import production_config, vllm_args


def _older_than_0_32() -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("vllm")
    except PackageNotFoundError:
        try:
            import vllm
        except ImportError:
            return False
        found = vllm.__version__
    try:
        major, minor = (int(x) for x in found.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) < (0, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-template", action="store_true")
    argv = sys.argv[1:]
    # Everything after "--" goes to vLLM untouched (argparse would take its flags for ours).
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    args = parser.parse_args(argv)
    cfg = production_config(
        args.checkpoint,
        served_model_name=_constants.DEFAULT_MODEL,
        host="127.0.0.1",
        port=args.port,
        extra_args=tuple(extra),
    )
    if args.no_template:
        cfg = cfg.with_(chat_template=None)
    if _older_than_0_32():
        # The device's vLLM 0.26 (the last for its torch) has no --trust-request-mm-kwargs, and
        # its transformers no cap_pixels_per_frame: the video-parity flags (vLLM 0.32) go.
        # Texts and images, which the bench measures, get the same arguments as on 0.32.
        image_kwargs = {k: v for k, v in cfg.mm_processor_kwargs.items() if k != "videos_kwargs"}
        cfg = cfg.with_(trust_request_mm_kwargs=False, mm_processor_kwargs=image_kwargs)
    print("\n".join(vllm_args(cfg)))


if __name__ == "__main__":
    main()
