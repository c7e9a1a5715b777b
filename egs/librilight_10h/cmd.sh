# shellcheck shell=bash disable=SC2034  # sourced by run.sh, which reads train_cmd, decode_cmd and cuda_cmd
# Where training runs with several nodes (./run.sh --num_nodes N): a Kaldi-style cluster command that ESPnet's
# launcher (espnet2.bin.launch) submits with. On one machine (the default, --num_nodes 1) it is not used:
# training runs in-process, one process per GPU with --ngpu N.
#   Slurm:            train_cmd="/path/to/espnet/egs2/TEMPLATE/asr1/utils/slurm.pl"   (srun inside an allocation)
#   Grid Engine/PBS:  train_cmd="/path/to/espnet/egs2/TEMPLATE/asr1/utils/queue.pl"   (mpirun, one process per node)
# These scripts come with an ESPnet or Kaldi checkout (softpl does not ship them); configure them as ESPnet's
# recipes do (conf/slurm.conf, conf/queue.conf).
train_cmd=""

# Where collect-stats (stage 5, --nj jobs) and decoding jobs run (stages 7 and 9, --inference_nj jobs per set):
# Kaldi-style job commands, called as
# "<cmd> JOB=1:N <log> <command>" (cuda_cmd with --gpu 1, for ./run.sh --gpu_inference true), e.g. run.pl, queue.pl
# or slurm.pl from an ESPnet or Kaldi checkout. Empty (the default): the jobs run as local processes.
decode_cmd=""
cuda_cmd=""
