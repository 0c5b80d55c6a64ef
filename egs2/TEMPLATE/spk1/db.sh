# Where the corpora are on this machine (as ESPnet's db.sh): set them here or in the environment.
# Each recipe's local/data.sh reads its own; nothing can be downloaded for you.
VOXCELEB1=${VOXCELEB1:-}        # VoxCeleb1: the wav/ trees of vox1_dev_wav.zip and vox1_test_wav.zip, and veri_test2.txt
ASVSPOOF2019=${ASVSPOOF2019:-}  # ASVspoof 2019, holding LA/ (ASVspoof2019_LA_{train,dev,eval}/flac, ASVspoof2019_LA_cm_protocols/)
export VOXCELEB1 ASVSPOOF2019
