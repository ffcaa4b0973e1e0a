"""API schemas of the HE channel (JSON parts; ciphertexts travel in :mod:`he_compute.frames`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from he_compute.models import HeContextRow


class ParamSetOut(BaseModel):
    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: list[int]
    scale_bits: int
    slots: int
    levels: int
    max_context_bytes: int
    use: str


class ContextOut(BaseModel):
    id: str
    project: str
    owner: str
    param_set: str
    sha256: str
    size_bytes: int
    has_relin_keys: bool
    has_galois_keys: bool
    created_at: str

    @classmethod
    def of(cls, row: HeContextRow) -> ContextOut:
        return cls(
            id=row.id,
            project=row.project_id,
            owner=row.owner,
            param_set=row.param_set,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            has_relin_keys=row.has_relin_keys,
            has_galois_keys=row.has_galois_keys,
            created_at=row.created_at.isoformat(),
        )


class ModelOut(BaseModel):
    """A model's metadata; its weights only to whom :func:`lab.artifacts.release.reveals` allows."""

    id: str
    name: str
    kind: str
    scope: Literal["project", "bureau"]
    project: str | None
    dataset: str
    dataset_version: int
    features: list[str]
    bounds: dict[str, list[float] | None]
    target: str
    classes: list[Any] | None = None
    scorable: bool
    release: Literal["dp", "published"] | None = None
    epsilon: str
    coef: list[float] | None = None
    intercept: float | None = None
    created_at: str


class TableOut(BaseModel):
    """A table's dimensions; its values only to whom :func:`lab.artifacts.release.reveals` allows."""

    id: str
    name: str
    scope: Literal["project", "bureau"]
    project: str | None
    dataset: str
    dataset_version: int
    dims: list[dict[str, Any]]
    statistic: str
    release: Literal["dp", "published"] | None = None
    epsilon: str
    values: list[float | None] | None = None
    created_at: str


class _Publish(BaseModel):
    """How published material is released; validated before anything is stored.

    * ``release="published"``: the bureau gives the values to every operator whose project may use
      them (they can be extracted through the channel anyway); the body carries the content.
    * ``release="dp"``: promote a project's DP release (``source``: its model or table id), whose ε
      was charged when it was made; the content is copied from it, the body carries none.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
    release: Literal["published", "dp"] = Field(
        description="published: values given to operators; dp: promoted from a DP release (source)"
    )
    source: str | None = Field(None, max_length=40, description="dp: id of the project's DP model or table")

    def _content(self) -> list[str]:
        raise NotImplementedError

    @model_validator(mode="after")
    def _release_matches_body(self) -> _Publish:
        given = [f for f in self._content() if getattr(self, f) is not None]
        if self.release == "dp":
            if self.source is None or given:
                raise ValueError('release "dp" takes a source (a DP release) and no content')
        elif self.source is not None or len(given) != len(self._content()):
            missing = sorted(set(self._content()) - set(given))
            raise ValueError(f'release "published" takes the content ({", ".join(missing)}), no source')
        return self


class PublishModel(_Publish):
    """A model the bureau publishes for every project's HE scoring."""

    kind: Literal["linear", "logistic"] | None = None
    dataset: str | None = Field(None, min_length=1, max_length=64)
    features: list[str] | None = Field(None, min_length=1, max_length=256)
    target: str | None = Field(None, min_length=1, max_length=64)
    coef: list[float] | None = Field(None, min_length=1, max_length=256)
    intercept: float | None = None
    classes: list[Any] | None = None
    bounds: dict[str, list[float]] | None = Field(
        None, description="feature -> [lo, hi]; default: the policy's"
    )

    def _content(self) -> list[str]:
        return ["kind", "dataset", "features", "target", "coef", "intercept"]

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"coef": self.coef, "intercept": self.intercept}
        if self.classes is not None:
            out["classes"] = self.classes
        if self.bounds:
            out["bounds"] = self.bounds
        return out


class PublishTable(_Publish):
    """A statistics table the bureau publishes for every project's HE lookups."""

    dataset: str | None = Field(None, min_length=1, max_length=64)
    dims: list[dict[str, Any]] | None = Field(None, min_length=1, max_length=4)
    statistic: str | None = Field(None, min_length=1, max_length=64)
    values: list[float | None] | None = Field(None, min_length=1, max_length=100_000)

    def _content(self) -> list[str]:
        return ["dataset", "dims", "statistic", "values"]
