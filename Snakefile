# cellvae: BBBC021 MCF7 fields → CellProfiler single cells → 128×128 RGB PNGs → convolutional VAEs → analysis.
configfile: "config/config.yaml"


include: "rules/config.smk"
include: "rules/common.smk"
include: "rules/synthetic.smk"
include: "rules/metadata.smk"
include: "rules/fetch.smk"
include: "rules/illumination.smk"
include: "rules/segmentation.smk"
include: "rules/png.smk"
include: "rules/dataset.smk"
include: "rules/train.smk"
include: "rules/analysis.smk"
include: "rules/cost.smk"
include: "rules/response.smk"
include: "rules/glance.smk"


report: "report/workflow.rst"


rule all:
    default_target: True
    input:
        unpack(products),  # every product of every stage (rules/common.smk): a deleted one is rebuilt
