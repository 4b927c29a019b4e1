"""Field types shared by the payload models of every event family."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

Text = Annotated[str, Field(min_length=1, max_length=4000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
AgencyId = Annotated[str, Field(pattern=r"^[a-z]{2}-[a-z]{2,20}$")]
Ref = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/-]{1,120}$")]
