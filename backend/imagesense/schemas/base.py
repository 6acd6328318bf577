"""The base of every public model."""

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    # In responses every field is present, defaults included: say so in the schema, so that generated
    # clients get required fields (and discriminated unions) instead of optional ones.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)
