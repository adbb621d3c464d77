"""Spoofed-speech detection: the task (its declarations ``spec``, what runs them ``task``), its
LightningModule (``module``), DataModule (``data``) and reports (``report``)."""

from lcnn.tasks.spoof.spec import SpoofSpec

__all__ = ["SpoofSpec"]
