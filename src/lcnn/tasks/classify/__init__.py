"""Image classification: the task (its declarations ``spec``, what runs them ``task``), its LightningModule
(``module``) and DataModule (``data``)."""

from lcnn.tasks.classify.spec import ClassifySpec

__all__ = ["ClassifySpec"]
