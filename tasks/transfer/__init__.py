"""The cross-dataset study of DooD (Liang et al. 2022, sec. 3.1, Fig. 4): ``pyro-draw transfer``.

:mod:`~tasks.transfer.task` evaluates DooD/AIR checkpoints on the test splits of other datasets
(IWAE log marginal likelihood), :mod:`~tasks.transfer.table` assembles the sources × targets
table (mean ± sd over seeds, the official DooD numbers as labelled references) and
:mod:`~tasks.transfer.pictures` draws its heat-map and the reconstructions of Fig. 4.
"""

from tasks.transfer.pictures import save_transfer_heatmap, save_transfer_reconstructions
from tasks.transfer.table import OFFICIAL_DOOD_500K, SourceKey, summarise_cells
from tasks.transfer.task import (
    TRANSFER_DESCRIPTION,
    TRANSFER_HELP,
    TransferOptions,
    add_transfer_arguments,
    check_transfer_checkpoint,
    run_transfer,
)

__all__ = [
    "OFFICIAL_DOOD_500K",
    "TRANSFER_DESCRIPTION",
    "TRANSFER_HELP",
    "SourceKey",
    "TransferOptions",
    "add_transfer_arguments",
    "check_transfer_checkpoint",
    "run_transfer",
    "save_transfer_heatmap",
    "save_transfer_reconstructions",
    "summarise_cells",
]
