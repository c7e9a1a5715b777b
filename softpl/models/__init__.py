"""softpl's ESPnet classes, registered in ESPnet's ``ClassChoices`` when this package is imported.

After ``import softpl.models``, ``--model cpl`` and ``--specaug scheduled`` work with stock ESPnet entry points
too (``ASRTask``, ``espnet2.bin.asr_inference``, ``Speech2Text``), because ESPnet's ASR task builds them from the
module-level ``espnet2.tasks.asr.model_choices`` and ``specaug_choices`` (``softpl.bin.asr_train`` is ESPnet's
ASR training with them registered). The registration lives here rather than in ``softpl/__init__.py`` so that
the data-preparation CLIs do not pay for importing ESPnet.
"""
from espnet2.tasks.asr import model_choices, specaug_choices

from softpl.models.cpl_model import CPLASRModel
from softpl.models.specaug import ScheduledSpecAug

model_choices.classes.setdefault("cpl", CPLASRModel)
specaug_choices.classes.setdefault("scheduled", ScheduledSpecAug)

__all__ = ["CPLASRModel", "ScheduledSpecAug"]
