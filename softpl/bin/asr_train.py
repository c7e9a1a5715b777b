"""ESPnet's ASR training (``espnet2.bin.asr_train``: its task, trainer and options, unchanged) with softpl's
classes registered (``--model cpl``, ``--specaug scheduled``), for the seed (stage 6), its statistics (stage 5)
and the supervised-only continuation of stage 8, so that they train with the losses and augmentation the
pseudo-labeling runs use (egs/librispeech_100: ``ctc_target_norm sqrt``, SpecAugment from update 5000)."""
from espnet2.bin.asr_train import main

import softpl.models  # noqa: F401  (registers softpl's classes into ESPnet's choices)

if __name__ == "__main__":
    main()
