"""The model-file error, in a module of its own so that code without torch (the ONNX Runtime
and TensorRT backends on a robot) can raise and catch it."""


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and what is wrong."""
