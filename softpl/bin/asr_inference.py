"""Stock ESPnet inference (``espnet2.bin.asr_inference``) for models trained with softpl.

Importing :mod:`softpl.models` first registers softpl's model classes in ESPnet's ``ClassChoices``, so
``config.yaml`` files that name them load; everything else (options, beam search, output layout) is
ESPnet's own. Note that ``--ctc_weight 1.0 --beam_size 1`` is a CTC prefix search, not frame-wise argmax:
use ``softpl.bin.decode`` for batched greedy CTC decoding.
"""
import softpl.models  # noqa: F401  (registers softpl's model classes in ESPnet)
from espnet2.bin.asr_inference import main

if __name__ == "__main__":
    main()
