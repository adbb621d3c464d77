"""Image classification: the task (options, recipes), its LightningModule (``module``) and DataModule (``data``)."""

from lcnn.tasks.classify.task import ClassifyTask

__all__ = ["ClassifyTask"]
