"""The stages of the speaker-verification recipe egs2/synth_spk/spk1 (its spk.sh calls them):
one module per stage, every training and embedding extraction a job of espnet_ssvd.recipe.jobs."""
