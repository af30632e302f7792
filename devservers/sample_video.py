"""A sample video, made with PyAV: what the tests, the benchmark and the README's curl
example upload, so nothing is downloaded.

    python -m devservers.sample_video clip.mp4 --seconds 5
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw


def make_video(
    path: Path,
    *,
    seconds: float = 2.0,
    width: int = 320,
    height: int = 240,
    fps: int = 25,
    codec: str = "libx264",
    audio: bool = False,
) -> Path:
    """Write a video of a square crossing a changing colour, with a frame counter, in
    the container ``path``'s suffix names; ``audio`` adds a silent AAC track."""
    frames = max(1, round(seconds * fps))
    with av.open(str(path), "w") as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        sound = output.add_stream("aac", rate=44100) if audio else None
        # A loop of distinct pictures, each drawn and converted once: a long clip costs
        # little more than its encoding.
        pictures = [picture(index, width, height) for index in range(min(frames, LOOP_FRAMES))]
        for index in range(frames):
            frame = pictures[index % len(pictures)]
            frame.pts, frame.time_base = index, Fraction(1, fps)
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
        if sound is not None:
            samples = 1024
            for block in range(int(seconds * 44100 / samples)):
                tone = av.AudioFrame(format="fltp", layout="mono", samples=samples)
                tone.sample_rate, tone.pts = 44100, block * samples
                for plane in tone.planes:
                    plane.update(bytes(plane.buffer_size))
                output.mux(sound.encode(tone))
            output.mux(sound.encode(None))
    return path


def padded_video(path: Path, megabytes: int) -> Path:
    """A one-second clip followed by an MP4 ``free`` box of ``megabytes`` (every reader
    skips it): a large upload that is quick to make, written a MiB at a time."""
    clip = make_video(path.with_suffix(".clip.mp4"), seconds=1, width=160, height=120)
    padding = megabytes * 1024 * 1024
    chunk = bytes(1024 * 1024)
    with open(path, "wb") as out:
        out.write(clip.read_bytes())
        out.write((padding + 8).to_bytes(4, "big") + b"free")
        for _ in range(megabytes):
            out.write(chunk)
    clip.unlink()
    return path


#: How many distinct pictures a sample video loops through.
LOOP_FRAMES = 60


def picture(index: int, width: int, height: int) -> av.VideoFrame:
    """The ``index``-th picture of the loop, as a frame ready to encode."""
    image = Image.new("RGB", (width, height), (index * 4 % 256, 64, 160))
    draw = ImageDraw.Draw(image)
    x = index * 7 % max(1, width - 40)
    draw.rectangle((x, height // 3, x + 40, height // 3 + 40), fill=(250, 220, 0))
    draw.text((8, 8), f"frame {index}", fill=(255, 255, 255))
    return av.VideoFrame.from_image(image).reformat(format="yuv420p")


def main(argv: list[str] | None = None) -> None:
    """Write a sample video where the command line says."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="where to write it (.mp4, .webm, .mkv)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--codec", default="libx264", help="libx264, libvpx-vp9, mpeg4, ...")
    parser.add_argument("--audio", action="store_true", help="add a silent AAC track")
    args = parser.parse_args(argv)
    make_video(
        args.path, seconds=args.seconds, width=args.width, height=args.height, fps=args.fps,
        codec=args.codec, audio=args.audio,
    )  # fmt: skip
    print(args.path)


if __name__ == "__main__":
    main()
