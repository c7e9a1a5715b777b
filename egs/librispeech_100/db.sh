# shellcheck shell=bash  # sourced by local/data.sh
# Where egs/librispeech_100 finds its corpus (as ESPnet's db.sh). Set it here, or export it before ./run.sh.
#   LIBRISPEECH: the folder that holds LibriSpeech/ (LibriSpeech/train-clean-100, LibriSpeech/dev-clean, ...).
#   An empty value stops stage 1 with a message. ./run.sh --local_data_opts "--download true" first fetches the
#   missing parts from openslr.org into it (about 60 GB of archives, extracted as they come).
LIBRISPEECH=${LIBRISPEECH:-}
