"""softpl's ESPnet model classes, registered in ESPnet's ``ClassChoices`` when this package is imported.

After ``import softpl.models``, ``--model cpl`` works with stock ESPnet entry points too (``ASRTask``,
``espnet2.bin.asr_inference``, ``Speech2Text``), because ESPnet's ASR task builds models from the
module-level ``espnet2.tasks.asr.model_choices``. (The registration lives here rather than in
``softpl/__init__.py`` so that the data-preparation CLIs do not pay for importing ESPnet.)
"""
from espnet2.tasks.asr import model_choices

from softpl.models.cpl_model import CPLASRModel

model_choices.classes.setdefault("cpl", CPLASRModel)

__all__ = ["CPLASRModel"]
