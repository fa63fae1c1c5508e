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
    print("\n".join(vllm_args(cfg)))


if __name__ == "__main__":
    main()
