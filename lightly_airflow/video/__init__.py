"""Videos as input: every frame is a sample (Lightly's frame names), decoded on the fly, never extracted.

- :mod:`.naming`: frame names and video extensions;
- :mod:`.index`: counting and locating frames by demuxing (no decoding);
- :mod:`.decode`: decoding exactly a shard's frames after a seek;
- :mod:`.avi`: an AVI's frame times from its own chunk index (``idx1``), where FFmpeg counts the chunks it read;
- :mod:`.quality`: the frame corruptness score of ``corruptness_check.corruption_threshold``;
- :mod:`.listing`: videos in a file list become frame rows of the manifest;
- :mod:`.frames`: one decode per frame for the model input, the metrics and the content hash;
- :mod:`.export`: selected frames written once as PNG under ``<lightly_uri>/.lightly/frames/``.
- :mod:`.past_end`: ``.lightly/`` files made for the frame after a video's last one (predictions, metadata).
"""

from lightly_airflow.video.index import VideoIndex, index_video
from lightly_airflow.video.naming import VIDEO_EXTENSIONS, frame_name, is_video_key, parse_frame_name

__all__ = ["VIDEO_EXTENSIONS", "VideoIndex", "frame_name", "index_video", "is_video_key", "parse_frame_name"]
