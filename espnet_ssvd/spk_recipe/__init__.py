"""The stages of the speaker-verification and spoof-detection recipes (egs2/TEMPLATE/spk1/spk.sh,
linked by egs2/synth_spk, synth_spoof, voxceleb1 and asvspoof2019): one module per stage, every
training and embedding extraction a job of espnet_ssvd.recipe.jobs; layout.py says where each
stage's work lies under exp/."""
