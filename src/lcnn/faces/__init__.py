"""Faces from real photos: detection with five landmarks (MTCNN), the official LightCNN alignment, galleries
(1:N search) and identity similarity."""
