"""The guide of a model with nothing to infer.

Classifiers (DRAM, the FC and convolutional baselines) have no latent variables, and RAM's and
the Catch agent's sampled locations and actions are the agent's own decisions, drawn from the
policy inside the model and trained by REINFORCE rather than variational inference. The registry
and the trainer still expect a ``(model, guide)`` pair: this is the guide that adds nothing.
"""

from __future__ import annotations

from typing import Any

from torch import nn


class EmptyGuide(nn.Module):
    """An empty guide program with no parameters."""

    def guide(self, *args: Any, **kwargs: Any) -> None:
        return None
