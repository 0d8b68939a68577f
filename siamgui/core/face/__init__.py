"""The face pipeline: from a photo to the aligned chip a face model sees.

- :mod:`~siamgui.core.face.detect`: OpenCV's Haar detector, the main-face rule, :class:`FaceInfo`;
- :mod:`~siamgui.core.face.mtcnn`: the MTCNN detector (our PyTorch code);
- :mod:`~siamgui.core.face.yunet`: the YuNet detector (ONNX, run by OpenCV);
- :mod:`~siamgui.core.face.landmarks`: dlib's 5-point shape predictor and chip geometry (NumPy);
- :mod:`~siamgui.core.face.alignment`: detector + landmarks -> dlib's 150x150 chip;
- :mod:`~siamgui.core.face.aligners`: the aligners by the name a model file gives them;
- :mod:`~siamgui.core.face.chips`: the disk cache of prepared training chips;
- :mod:`~siamgui.core.face.dlib_format`: reading dlib's ``.dat`` files (no dlib needed);
- :mod:`~siamgui.core.face.quality`: face quality (sharpness, size, pose, exposure) and the camera's frame picker;
- :mod:`~siamgui.core.face.liveness`: the liveness hint (Silent-Face-Anti-Spoofing's networks).

Import the module you need; this package imports none of them (torch stays unloaded).
"""
