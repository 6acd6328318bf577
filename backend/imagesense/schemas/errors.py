"""The error shape shared by every endpoint."""

from pydantic import Field

from imagesense.schemas.base import ApiModel


class ErrorBody(ApiModel):
    code: str = Field(description="Stable machine-readable error code, e.g. `payload_too_large`.")
    message: str = Field(description="What went wrong and the limit that applies, for people.")
    field: str | None = Field(None, description="The request field at fault, when there is one.")
    request_id: str | None = Field(
        None, description="The request's id (X-Request-ID): the server's log has the details under it."
    )


class ErrorResponse(ApiModel):
    error: ErrorBody
