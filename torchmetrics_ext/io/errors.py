"""The one error of the video readers."""


class VideoReadError(ValueError):
    """A video that cannot be read; the message names the file (``path[index]`` in a tensor file) and why.

    A subclass of ``ValueError``: code that already catches bad inputs as ``ValueError`` catches it too.

    Example:
        >>> from torchmetrics_ext.io import VideoReadError, read_video
        >>> try:
        ...     read_video("missing.mp4")
        ... except VideoReadError as error:
        ...     print(error)
        missing.mp4: no such file or folder

    """
