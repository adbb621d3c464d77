"""Face verification: the task (its declarations ``spec``, what runs them ``task``), its LightningModule
(``module``), DataModule (``data``) and the verification helpers (``verification``)."""

from lcnn.tasks.face.spec import FaceSpec

__all__ = ["FaceSpec"]
