"""Spoofed-speech detection: the task (options, recipes), its LightningModule (``module``), DataModule
(``data``) and reports (``report``)."""

from lcnn.tasks.spoof.task import SpoofTask

__all__ = ["SpoofTask"]
