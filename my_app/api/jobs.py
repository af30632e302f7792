"""Submitting jobs: one resource per kind, each answering 202 with the queued task."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from flask import Request, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import RAISE, Schema
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict, FileStorage

from .. import lifecycle
from ..jobs.thumbnail import InvalidImage, UnsupportedImage, check_image
from ..jobs.video import InvalidVideo, probe_video
from ..owners import can_see
from ..status import read_tasks
from ..store.artifacts import artifact_store
from ..store.ledger import ledger_of
from ..tasks import email_task, report_task, slow_task, thumbnail_task, video_task
from .limits import submission_limit
from .quotas import check_job_seconds
from .schemas import (
    EmailJobSchema,
    ErrorSchema,
    IdempotencyHeadersSchema,
    ReportJobSchema,
    SlowJobSchema,
    SubmissionOptionsSchema,
    TaskSchema,
    ThumbnailJobSchema,
    VideoJobSchema,
)
from .tasks import accept


class MultipartParser(FlaskParser):
    """webargs' Flask parser plus a ``multipart`` location (form fields and files
    together), and a JSON body held to what the service can store."""

    __location_map__ = dict(multipart="load_multipart", **FlaskParser.__location_map__)

    def load_json(self, req: Request, schema: Schema) -> Any:
        """The JSON body, refused (400) when Python cannot read it (an integer of more
        than 4,300 digits) or it holds text that is not text (an unpaired surrogate,
        ``"\\ud800"``, which no UTF-8 store can keep)."""
        try:
            body = super().load_json(req, schema)
        except ValueError as error:  # json's int limit; JSONDecodeError is webargs' 400
            abort(400, message=f"The JSON body cannot be read: {error}")
        if LONE_SURROGATE_ESCAPE.search(req.get_data(cache=True)) and holds_lone_surrogate(body):
            abort(400, message="The JSON body holds an unpaired surrogate (\\ud800-\\udfff).")
        return body

    def load_multipart(self, req: Request, schema: Schema) -> MultiDictProxy:
        """Fields from the form and the uploaded files of a multipart/form-data body."""
        return MultiDictProxy(CombinedMultiDict([req.form, req.files]), schema)


#: A JSON escape of a surrogate: only such a body can hold an unpaired one.
LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def holds_lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string that is not valid Unicode text (one
    UTF-8 cannot encode)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class JobsBlueprint(Blueprint):
    """A Blueprint whose views may take one multipart body of fields and files.

    flask-smorest documents one request body per operation, so form fields and files
    are read, and documented, as one schema: its documented ``ARGUMENTS_PARSER`` and
    ``DEFAULT_LOCATION_CONTENT_TYPE_MAPPING`` hooks, nothing overridden.
    """

    ARGUMENTS_PARSER = MultipartParser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "multipart": "multipart/form-data",
    }


blp = JobsBlueprint("jobs", __name__, url_prefix="/api/tasks", description="Submit jobs.")


# Each submission takes ``SubmissionOptionsSchema`` with ``unknown=RAISE``: a misspelt
# ?run_at or ?callback_url is a 422, not a job queued now with no callback.

#: The submissions whose body is multipart/form-data (a file and fields), not JSON.
MULTIPART_ENDPOINTS = {"jobs.ThumbnailJobs", "jobs.VideoJobs"}


@blp.before_request
def require_json_bodies() -> None:
    """Refuse a body of the wrong type with 415, rather than reading it as missing
    fields; a video may be larger than any other body (MAX_VIDEO_UPLOAD_BYTES)."""
    if request.endpoint == "jobs.VideoJobs":
        request.max_content_length = current_app.config["MAX_VIDEO_UPLOAD_BYTES"]
    expected = "multipart/form-data" if request.endpoint in MULTIPART_ENDPOINTS else None
    if request.content_length and request.mimetype != expected and not request.is_json:
        abort(415, message="Send the request body as JSON (Content-Type: application/json).")


def submission_doc(view: Any) -> Any:
    """The answers every submission shares besides its 202, errors in the Error schema."""
    view = blp.alt_response(
        200, schema=TaskSchema, description="An Idempotency-Key replay: the task first created"
    )(view)
    for code, description in (
        (401, "No valid API key"),
        (403, "A cross-site request with the browser's cookie"),
        (409, "Idempotency-Key reused with another body"),
        (413, "The body, the image or the inputs to store are too large"),
        (415, "The body is not of the expected type"),
        (
            429,
            "Too many submissions this minute (see Retry-After and X-RateLimit-*), or too "
            "many jobs queued or running at once",
        ),
        (503, "Redis or the broker is unreachable; nothing was queued"),
    ):
        view = blp.alt_response(code, schema=ErrorSchema, description=description)(view)
    return view


#: How a multipart body sends ``sizes``: one part per size (what generated clients send).
SIZES_ENCODING = {"sizes": {"style": "form", "explode": True}}


@blp.route("/slow")
class SlowJobs(MethodView):
    decorators = [submission_limit]

    @blp.arguments(SlowJobSchema())
    @blp.arguments(IdempotencyHeadersSchema(), location="headers")
    @blp.arguments(SubmissionOptionsSchema(), location="query", unknown=RAISE)
    @blp.response(202, TaskSchema)
    @submission_doc
    def post(self, job: dict[str, Any], headers: dict[str, Any], options: dict[str, Any]) -> Any:
        """Queue the seed job: count seconds with progress, then greet a name"""
        check_job_seconds(job["seconds"])
        return accept(slow_task.name, job, headers, options=options)


@blp.route("/email")
class EmailJobs(MethodView):
    decorators = [submission_limit]

    @blp.arguments(EmailJobSchema())
    @blp.arguments(IdempotencyHeadersSchema(), location="headers")
    @blp.arguments(SubmissionOptionsSchema(), location="query", unknown=RAISE)
    @blp.response(202, TaskSchema)
    @submission_doc
    def post(self, job: dict[str, Any], headers: dict[str, Any], options: dict[str, Any]) -> Any:
        """Queue an email; transient SMTP failures are retried with backoff"""
        job = earlier_tasks_checked(job, "attachment_tasks")
        return accept(email_task.name, job, headers, options=options)


@blp.route("/report")
class ReportJobs(MethodView):
    decorators = [submission_limit]

    @blp.arguments(ReportJobSchema())
    @blp.arguments(IdempotencyHeadersSchema(), location="headers")
    @blp.arguments(SubmissionOptionsSchema(), location="query", unknown=RAISE)
    @blp.response(202, TaskSchema)
    @submission_doc
    def post(self, job: dict[str, Any], headers: dict[str, Any], options: dict[str, Any]) -> Any:
        """Queue a PDF report; the PDF becomes the artifact report.pdf"""
        job = earlier_tasks_checked(job, "image_tasks")
        return accept(report_task.name, job, headers, options=options)


@blp.route("/thumbnail")
class ThumbnailJobs(MethodView):
    decorators = [submission_limit]

    @blp.arguments(ThumbnailJobSchema(), location="multipart")
    @blp.arguments(IdempotencyHeadersSchema(), location="headers")
    @blp.arguments(SubmissionOptionsSchema(), location="query", unknown=RAISE)
    @blp.response(202, TaskSchema)
    @blp.doc(requestBody={"content": {"multipart/form-data": {"encoding": SIZES_ENCODING}}})
    @submission_doc
    def post(self, form: dict[str, Any], headers: dict[str, Any], options: dict[str, Any]) -> Any:
        """Queue thumbnails of an uploaded JPEG, PNG, WebP or GIF image"""
        upload_id = stored_image(form["file"])
        sizes = sorted(set(form["sizes"]))
        inputs = {"upload_id": upload_id, "sizes": sizes, "format": form["format"]}
        return accept(thumbnail_task.name, inputs, headers, options=options)


@blp.route("/video")
class VideoJobs(MethodView):
    decorators = [submission_limit]

    @blp.arguments(VideoJobSchema(), location="multipart")
    @blp.arguments(IdempotencyHeadersSchema(), location="headers")
    @blp.arguments(SubmissionOptionsSchema(), location="query", unknown=RAISE)
    @blp.response(202, TaskSchema)
    @submission_doc
    def post(self, form: dict[str, Any], headers: dict[str, Any], options: dict[str, Any]) -> Any:
        """Queue a video's poster, contact sheet and web preview (H.264 MP4 or VP9 WebM),
        with its metadata; the upload streams to the artifact store"""
        upload: FileStorage = form["file"]
        upload_id = stored_video(upload)
        inputs = {
            "upload_id": upload_id,
            "preview_height": form["preview_height"],
            "preview_format": form["preview_format"],
            "contact_frames": form["contact_frames"],
            "filename": (upload.filename or "video")[:200],
        }
        return accept(video_task.name, inputs, headers, options=options)


def earlier_tasks_checked(job: dict[str, Any], field: str) -> dict[str, Any]:
    """The job, with the earlier tasks it takes files from as ids, each one the caller
    may see (422 naming the first that is not)."""
    if not job.get(field):
        job.pop(field, None)
        return job
    ids = [str(task_id) for task_id in job[field]]
    visible = {task.id for task in read_tasks(ids) if can_see(task)}
    for task_id in ids:
        if task_id not in visible:
            message = f"No task {task_id} of yours: it never existed or has expired."
            abort(422, message=message, errors={"json": {field: [message]}})
    return {**job, field: ids}


def stored_image(upload: FileStorage) -> str:
    """Check an uploaded image and keep it in the artifact store; its upload id."""
    image = read_image(upload)
    return lifecycle.upload_stored(ledger_of(), artifact_store(), io.BytesIO(image), "image")


def stored_video(upload: FileStorage) -> str:
    """Probe an uploaded video (422 with the reason) and stream it into the artifact
    store; its upload id."""
    try:
        probe_video(
            upload.stream,
            max_seconds=current_app.config["MAX_VIDEO_SECONDS"],
            max_pixels=current_app.config["MAX_VIDEO_PIXELS"],
        )
    except InvalidVideo as error:
        abort(422, message=str(error), errors={"multipart": {"file": [str(error)]}})
    return lifecycle.upload_stored(ledger_of(), artifact_store(), upload.stream, "video")


def read_image(upload: FileStorage) -> bytes:
    """The uploaded image's bytes, checked before anything is stored or queued."""
    max_bytes = current_app.config["MAX_UPLOAD_BYTES"]
    data = upload.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        abort(413, message=f"The image is larger than {max_bytes} bytes.")
    try:
        check_image(data, current_app.config["MAX_IMAGE_PIXELS"])
    except UnsupportedImage as error:
        abort(415, message=str(error))
    except InvalidImage as error:
        abort(422, message=str(error), errors={"multipart": {"file": [str(error)]}})
    return data
