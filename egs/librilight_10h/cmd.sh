# shellcheck shell=bash disable=SC2034  # sourced by run.sh, which reads train_cmd
# Where training runs with several nodes (./run.sh --num_nodes N): a Kaldi-style cluster command that ESPnet's
# launcher (espnet2.bin.launch) submits with. On one machine (the default, --num_nodes 1) it is not used:
# training runs in-process, one process per GPU with --ngpu N.
#   Slurm:            train_cmd="/path/to/espnet/egs2/TEMPLATE/asr1/utils/slurm.pl"   (srun inside an allocation)
#   Grid Engine/PBS:  train_cmd="/path/to/espnet/egs2/TEMPLATE/asr1/utils/queue.pl"   (mpirun, one process per node)
# These scripts come with an ESPnet or Kaldi checkout (softpl does not ship them); configure them as ESPnet's
# recipes do (conf/slurm.conf, conf/queue.conf).
train_cmd=""
