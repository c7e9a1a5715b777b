# shellcheck shell=bash  # sourced by local/data.sh
# Where egs/librilight_10h finds its corpora (as ESPnet's db.sh). Set them here, or export them before ./run.sh.
#   LIBRISPEECH:           the folder that holds LibriSpeech/ (train-clean-100, train-clean-360, train-other-500,
#                          dev-clean, dev-other, test-clean, test-other).
#   LIBRILIGHT_FINETUNING: the folder that holds librispeech_finetuning/ (Libri-light's limited-supervision
#                          sets: 1h/{0..5}/{clean,other}, 9h/{clean,other}).
#   An empty value stops stage 1 with a message. ./run.sh --local_data_opts "--download true" first fetches what is
#   missing (LibriSpeech from openslr.org, about 60 GB; librispeech_finetuning.tgz from dl.fbaipublicfiles.com).
LIBRISPEECH=${LIBRISPEECH:-}
LIBRILIGHT_FINETUNING=${LIBRILIGHT_FINETUNING:-}
