"""Camera capture (OpenCV, no Qt): webcams, video files and stream URLs."""

from siamgui.capture.camera import CameraError, CameraSource, OpenCVSource, list_cameras, open_source, parse_source

__all__ = ["CameraError", "CameraSource", "OpenCVSource", "list_cameras", "open_source", "parse_source"]
