"""Face verification: the task (options, recipes), its LightningModule (``module``), DataModule (``data``) and
the verification helpers (``verification``)."""

from lcnn.tasks.face.task import FaceTask

__all__ = ["FaceTask"]
