"""Checking uploaded videos and making a poster, a contact sheet and a web preview of them,
with PyAV (FFmpeg's libraries, shipped in its wheel: nothing is shelled out to).

One pass decodes every frame once: each is encoded into the preview, and the ones at the
poster's and the contact sheet's times are kept as images on the way.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from typing import IO, Any

import av
from PIL import Image

#: The preview's encoders: H.264 in MP4 plays in every browser; VP9 in WebM is open.
PREVIEW_FORMATS = {"mp4": "libx264", "webm": "libvpx-vp9"}
PREVIEW_OPTIONS = {
    # faststart puts the index first, so a browser plays it before it has it all.
    "mp4": {"preset": "veryfast", "crf": "28", "movflags": "+faststart"},
    "webm": {"deadline": "realtime", "cpu-used": "8", "crf": "36", "b": "0"},
}
#: The lowest and highest preview one may ask for, in pixels.
PREVIEW_HEIGHTS = (72, 2160)
#: FFmpeg reads a still image as a one-frame "video": these are not videos here.
IMAGE_DEMUXERS = ("image2", "_pipe")
POSTER_WIDTH = 1280
SHEET_TILE_WIDTH = 240
#: A frame of this many seconds into the video is the poster (or of a tenth of it).
POSTER_SECONDS = 1.0
#: How many of its first frames a probe decodes.
PROBED_FRAMES = 12
#: The filters that stand a frame upright, by the rotation its display matrix asks for
#: (degrees counterclockwise, as PyAV reads it): what ffmpeg's own autorotate inserts.
#: A phone records portrait video as landscape frames with such a matrix.
UPRIGHT_FILTERS: dict[int, list[tuple[str, str]]] = {
    90: [("transpose", "cclock")],
    180: [("hflip", ""), ("vflip", "")],
    270: [("transpose", "clock")],
}


class InvalidVideo(Exception):
    """A file that is not a video we can use: not a video, corrupt, or over a budget (422)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a probe learns of a video."""

    container: str
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    frame_rate: float
    duration_seconds: float
    frames: int

    def as_dict(self) -> dict[str, Any]:
        """The metadata, as a job's result shows it."""
        return asdict(self)


@dataclass(frozen=True)
class VideoOutputs:
    """The files one pass made (paths in the work folder) and the metadata."""

    info: VideoInfo  # its width and height as shown: upright
    poster: str
    contact_sheet: str
    preview: str
    frames_decoded: int


def probe_video(source: str | IO[bytes], *, max_seconds: float, max_pixels: int) -> VideoInfo:
    """Check that ``source`` is a whole video within the budgets, and describe it.

    Reads the container's header, refuses what is over the duration or pixel budget
    before decoding anything, then decodes the first frame and a frame near the end, so
    a file cut short or with a corrupt stream is refused here (422) rather than failing
    in a worker. Raises ``InvalidVideo`` with the reason.
    """
    try:
        with av.open(source, metadata_errors="ignore") as container:
            info = describe(container)
            if info.width * info.height > max_pixels:
                raise InvalidVideo(
                    f"The video is {info.width}x{info.height}, more than the {max_pixels} "
                    "pixels a frame may have."
                )
            if info.duration_seconds > max_seconds:
                raise InvalidVideo(
                    f"The video lasts {info.duration_seconds:.1f} s, longer than the "
                    f"{max_seconds:g} s allowed."
                )
            stream = container.streams.video[0]
            # Any damage the decoder notices is an error here (it would conceal it).
            stream.codec_context.options = {"err_detect": "explode"}
            if decoded_frames(container, stream, PROBED_FRAMES) == 0:
                raise InvalidVideo("No frame of the video can be decoded.")
            near_end = max(0.0, info.duration_seconds - 1.0)
            container.seek(int(near_end * av.time_base), any_frame=False, backward=True)
            if decoded_frames(container, stream, 1) == 0:
                raise InvalidVideo("The video is cut short: its last second cannot be decoded.")
    except InvalidVideo:
        raise
    except (av.FFmpegError, ValueError, OSError) as error:
        raise InvalidVideo(f"The file is not a video that can be read: {error}") from None
    return info


def describe(container: av.container.InputContainer) -> VideoInfo:
    """A container's metadata; raises ``InvalidVideo`` when it holds no usable video."""
    if any(name in container.format.name for name in IMAGE_DEMUXERS):
        raise InvalidVideo("The file is a still image, not a video.")
    if not container.streams.video:
        raise InvalidVideo("The file has no video stream.")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        raise InvalidVideo("The video's frame size is unknown.")
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    if container.duration:
        duration = container.duration / av.time_base
    elif stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    else:
        raise InvalidVideo("The video's duration is unknown.")
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    return VideoInfo(
        container=container.format.name,
        video_codec=stream.codec_context.name,
        audio_codec=audio,
        width=width,
        height=height,
        frame_rate=round(float(rate), 3),
        duration_seconds=round(duration, 3),
        frames=stream.frames or max(1, round(duration * float(rate))),
    )


def decoded_frames(container: av.container.InputContainer, stream: Any, most: int) -> int:
    """Decode up to ``most`` frames from here; returns how many decoded."""
    count = 0
    for _ in container.decode(stream):
        count += 1
        if count >= most:
            break
    return count


def preview_size(width: int, height: int, wanted_height: int) -> tuple[int, int]:
    """The preview's even width and height: ``wanted_height`` high, never above the
    source's, with the source's shape."""
    out_height = min(wanted_height, height) // 2 * 2
    out_width = max(2, round(width * out_height / height / 2) * 2)
    return out_width, max(2, out_height)


def make_video_outputs(
    source: str,
    work_dir: str,
    *,
    preview_height: int,
    preview_format: str,
    contact_frames: int,
    on_frame: Callable[[int, int], None],
) -> VideoOutputs:
    """Decode ``source`` once; write the preview, poster and contact sheet in
    ``work_dir``. ``on_frame(done, total)`` is called after each frame (it may raise to
    stop: the files are left in ``work_dir`` for its owner to delete)."""
    preview_path = os.path.join(work_dir, f"preview.{preview_format}")
    with av.open(source, metadata_errors="ignore") as container:
        info = describe(container)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # decode with frame and slice threads
        frames, rotation = upright_frames(container.decode(stream), stream)
        if rotation in (90, 270):
            info = replace(info, width=info.height, height=info.width)
        rate = Fraction(stream.average_rate or stream.guessed_rate or 25).limit_denominator(1001)
        width, height = preview_size(info.width, info.height, preview_height)
        poster_at = min(POSTER_SECONDS, info.duration_seconds / 10)
        sheet_times = [
            info.duration_seconds * (i + 0.5) / contact_frames for i in range(contact_frames)
        ]
        poster: Image.Image | None = None
        tiles: list[Image.Image] = []
        done = 0
        with av.open(preview_path, "w") as output:
            encoder = output.add_stream(PREVIEW_FORMATS[preview_format], rate=rate)
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.options = PREVIEW_OPTIONS[preview_format]
            encoder.codec_context.time_base = 1 / rate
            for seconds_in, frame in frames:
                seconds = seconds_in if seconds_in is not None else done / float(rate)
                if poster is None and seconds >= poster_at:
                    poster = scaled_image(frame, POSTER_WIDTH)
                while len(tiles) < contact_frames and seconds >= sheet_times[len(tiles)]:
                    tiles.append(scaled_image(frame, SHEET_TILE_WIDTH))
                scaled = frame.reformat(width=width, height=height, format="yuv420p")
                scaled.pts, scaled.time_base = done, encoder.codec_context.time_base
                output.mux(encoder.encode(scaled))
                done += 1
                on_frame(done, max(done, info.frames))
            output.mux(encoder.encode(None))
    if poster is None:
        raise InvalidVideo("No frame of the video could be decoded.")
    poster_path = os.path.join(work_dir, "poster.jpg")
    poster.save(poster_path, "JPEG", quality=85)
    sheet_path = os.path.join(work_dir, "contact-sheet.jpg")
    contact_sheet(tiles or [poster], contact_frames).save(sheet_path, "JPEG", quality=80)
    return VideoOutputs(info, poster_path, sheet_path, preview_path, done)


def upright_frames(
    decoded: Iterator[av.VideoFrame], stream: Any
) -> tuple[Iterator[tuple[float | None, av.VideoFrame]], int]:
    """The decoded frames (with their times) stood upright, and the rotation that took
    (0, 90, 180 or 270 degrees counterclockwise). FFmpeg's decoder leaves a display
    matrix to the player; the preview, poster and sheet are made of the frames as
    shown, through an FFmpeg filter graph, as ffmpeg's autorotate does."""
    first = next(decoded, None)
    rotation = round(first.rotation) % 360 if first is not None else 0
    everything = itertools.chain([first] if first is not None else [], decoded)
    if rotation not in UPRIGHT_FILTERS:
        return ((frame.time, frame) for frame in everything), 0
    graph = av.filter.Graph()
    nodes = [graph.add_buffer(template=stream)]
    nodes += [graph.add(name, arguments) for name, arguments in UPRIGHT_FILTERS[rotation]]
    graph.link_nodes(*nodes, graph.add("buffersink")).configure()

    def turned() -> Iterator[tuple[float | None, av.VideoFrame]]:
        for frame in everything:
            graph.vpush(frame)
            yield frame.time, graph.vpull()

    return turned(), rotation


def scaled_image(frame: av.VideoFrame, width: int) -> Image.Image:
    """A frame as an RGB image at most ``width`` wide."""
    height = max(2, round(frame.height * min(width, frame.width) / frame.width))
    return frame.to_image(width=min(width, frame.width), height=height)


def contact_sheet(tiles: list[Image.Image], columns_for: int) -> Image.Image:
    """The tiles on a grid, left to right and top to bottom, on a dark background."""
    columns = max(1, math.ceil(math.sqrt(columns_for)))
    rows = math.ceil(len(tiles) / columns)
    tile_width, tile_height = tiles[0].size
    gap = 4
    sheet = Image.new(
        "RGB",
        (columns * (tile_width + gap) + gap, rows * (tile_height + gap) + gap),
        (24, 24, 27),
    )
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        sheet.paste(tile, (gap + column * (tile_width + gap), gap + row * (tile_height + gap)))
    return sheet
