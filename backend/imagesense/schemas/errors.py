"""The error shape shared by every endpoint."""

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code, e.g. `payload_too_large`.")
    message: str = Field(description="What went wrong and the limit that applies, for people.")
    field: str | None = Field(None, description="The request field at fault, when there is one.")


class ErrorResponse(BaseModel):
    error: ErrorBody
