"""The adaptation recipes' stages (egs2/TEMPLATE/adapt1/adapt.sh), one module per stage or concern:

settings   the options, typed and validated         check    methods and YAMLs, before any work
jobs       jobs and their engines (submitit)
family     ASR / S2T model differences              source   the model adaptation starts from
data       stage 2 and the test sets                train    training jobs, stage 3
plan       stage 5: budget-matched experiments      decode   decoding jobs, stages 4 and 6
report     stage 7: RESULTS.md and plots            cli      the command line
"""
