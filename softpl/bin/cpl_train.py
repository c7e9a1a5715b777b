"""Continuous pseudo-labeling training (slimIPL with hard, soft, frame-level or sampled targets).

``python -m softpl.bin.cpl_train --config conf.yaml --init_param seed.pth ...``: ESPnet's ASR training
command line (every option of ``espnet2.bin.asr_train`` works: ``--ngpu``, ``--multiprocessing_distributed``,
``--resume``, ``--use_amp``, ``--keep_nbest_models``, ...) plus the unlabeled data and ``--pl_*`` options of
:class:`softpl.tasks.cpl_asr.CPLASRTask`; ``--help`` lists them all.
"""
import torch

from softpl.tasks.cpl_asr import CPLASRTask


def main(cmd=None):
    CPLASRTask.main(cmd=cmd)
    # ESPnet leaves the process group up; tearing gloo down at interpreter exit can abort a rank
    # ("terminate called without an active exception") after a run that succeeded.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
